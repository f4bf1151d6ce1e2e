"""Redis keys, clients, the consumer group and the two Lua scripts of the queue."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.config import Settings

#: Errors meaning "Redis is unreachable right now" (as opposed to a bad command).
REDIS_DOWN: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)

# KEYS: frames stream. ARGV: max length, then field/value pairs of the entry.
# Refuses (returns false) at the bound, so a full stream never grows.
ENQUEUE_LUA = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
"""

# KEYS: frames stream, done marker, reply stream, results stream.
# ARGV: group, entry id, rid, done ttl ms, reply payload, reply maxlen, reply ttl ms,
#       results maxlen, record json ('' = nothing to audit).
# The first delivery under a done marker stores its reply there, answers and audits; a
# later one (a redelivery, or a retry of the same frame) answers its requester with the
# stored reply and audits nothing.
DELIVER_LUA = """
local fresh = redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', ARGV[4])
local reply = ARGV[5]
if not fresh then reply = redis.call('GET', KEYS[2]) end
if reply then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'rid', ARGV[3], 'reply', reply)
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
if fresh and ARGV[9] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[8], '*', 'rid', ARGV[3], 'record', ARGV[9])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if fresh then return 1 end
return 0
"""


def process_name(unique: bool = False) -> str:
    """``<hostname>-<pid>``, readable in ``XINFO CONSUMERS`` (a worker's consumer name);
    with ``unique`` a random suffix too (an API instance's reply stream, never reused)."""
    name = f"{socket.gethostname()}-{os.getpid()}"
    return f"{name}-{uuid.uuid4().hex[:6]}" if unique else name


@dataclass(frozen=True)
class QueueKeys:
    """Every key name the queue uses, derived from the prefix."""

    prefix: str
    group: str

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueKeys:
        """Keys for ``settings.redis_prefix`` and ``settings.redis_group``."""
        return cls(settings.redis_prefix, settings.redis_group)

    @property
    def frames(self) -> str:
        """The frame stream workers consume."""
        return f"{self.prefix}:frames"

    @property
    def results(self) -> str:
        """The bounded stream of every delivered detection record."""
        return f"{self.prefix}:results"

    def replies(self, instance: str) -> str:
        """The reply stream of one API instance."""
        return f"{self.prefix}:replies:{instance}"

    def done(self, rid: str) -> str:
        """The 'answered' marker (holding the answer) of one request or one frame."""
        return f"{self.prefix}:done:{rid}"

    def alive(self, consumer: str) -> str:
        """The heartbeat key of one worker (expires unless refreshed)."""
        return f"{self.prefix}:alive:{consumer}"

    @property
    def dead_letters(self) -> str:
        """The bounded stream of frames that were delivered too often (poison frames)."""
        return f"{self.prefix}:dead"


def connect(settings: Settings, block_ms: int = 0) -> aioredis.Redis:
    """A client that fails fast: short timeouts, one immediate retry (stale connection).

    ``block_ms`` > 0 gives a client for blocking reads: its read timeout covers the block.
    """
    timeout = settings.redis_timeout_ms / 1000
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout + block_ms / 1000,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )
    return client


async def ensure_group(client: aioredis.Redis, keys: QueueKeys) -> None:
    """Create the consumer group (and stream) if missing.

    The group starts at id 0: every entry in the stream is unanswered (answered ones are
    deleted), so frames appended before the first worker existed are still served.
    """
    try:
        await client.xgroup_create(keys.frames, keys.group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def is_nogroup(exc: BaseException) -> bool:
    """True for the error Redis gives when the stream or group vanished (restart, flush)."""
    return isinstance(exc, ResponseError) and "NOGROUP" in str(exc)


def stream_entries(resp: Any) -> list[tuple[str, dict[Any, Any]]]:
    """Flatten an XREAD/XREADGROUP reply to ``(entry id, fields)`` pairs."""
    streams = resp.values() if isinstance(resp, dict) else [e for _s, e in resp or []]
    return [(text(eid), fields) for entries in streams for eid, fields in entries]


def text(value: Any) -> str:
    """Decode a Redis bulk string (bytes) to str."""
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)
