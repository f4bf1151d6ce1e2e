"""Capture limits as token buckets, per sampler and window (minute, hour, day).

In-process (:class:`LocalBuckets`) the check runs on the event loop: no lock is needed
(one thread) and it costs a few arithmetic operations. With ``queue=redis`` the buckets
are shared by every API instance (:class:`RedisBuckets`, one atomic Lua script) and the
check runs in the writer thread, off the loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from service.capture.spec import SamplerSpec

# KEYS: one hash per window; ARGV: now, then capacity and refill rate per window.
# Takes one token from every bucket only when each has one.
_LUA = """
local now = tonumber(ARGV[1])
local tokens = {}
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 't', 'ts')
  local t = tonumber(state[1]) or cap
  local ts = tonumber(state[2]) or now
  t = math.min(cap, t + math.max(0, now - ts) * rate)
  if t < 1 then return 0 end
  tokens[i] = t
end
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 't', tokens[i] - 1, 'ts', now)
  redis.call('EXPIRE', key, math.ceil(cap / tonumber(ARGV[2 * i + 1])) + 60)
end
return 1
"""


class LocalBuckets:
    """Token buckets in this process, keyed by sampler name."""

    def __init__(self, specs: list[SamplerSpec], clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._state: dict[str, list[list[float]]] = {
            s.name: [[float(cap), cap / window, 0.0, float(cap)] for cap, window in s.limits()]
            for s in specs
        }

    def take(self, sampler: str) -> bool:
        """Take one token from each of the sampler's buckets, or none when one is empty."""
        buckets = self._state.get(sampler)
        if not buckets:
            return True
        now = self.clock()
        for b in buckets:  # b = [tokens, rate, last, capacity]
            b[0] = min(b[3], b[0] + (now - b[2]) * b[1]) if b[2] else b[0]
            b[2] = now
        if any(b[0] < 1 for b in buckets):
            return False
        for b in buckets:
            b[0] -= 1
        return True


class RedisBuckets:
    """The same buckets in Redis, shared by every instance using ``prefix``."""

    def __init__(self, client: Any, prefix: str, specs: list[SamplerSpec]) -> None:
        self.client = client
        self.prefix = prefix
        self.specs = {s.name: s for s in specs}
        self.script = client.register_script(_LUA)

    def take(self, sampler: str) -> bool:
        """Atomically take one token from each bucket of ``sampler`` (blocking call)."""
        spec = self.specs.get(sampler)
        if spec is None or not spec.limits():
            return True
        keys, args = [], [time.time()]
        for cap, window in spec.limits():
            keys.append(f"{self.prefix}:capture:bucket:{sampler}:{int(window)}")
            args += [cap, cap / window]
        return bool(self.script(keys=keys, args=args))
