"""Export the queue's state: stream length, consumer-group lag and pending entries."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from service.metrics import Metrics
from service.queue.health import RedisHealth
from service.queue.streams import REDIS_DOWN, QueueKeys
from service.queue.tasks import cancel_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueStats:
    """One reading of the frame stream.

    ``length`` counts unanswered frames (answered ones are deleted), ``pending`` those a
    worker holds, so ``lag`` = ``length - pending`` is what no worker has read yet.
    """

    length: int
    pending: int

    @property
    def lag(self) -> int:
        """Frames not yet delivered to any worker."""
        return max(0, self.length - self.pending)


async def read_stats(client: aioredis.Redis, keys: QueueKeys) -> QueueStats:
    """XLEN and the XPENDING summary in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(keys.frames)
    pipe.xpending(keys.frames, keys.group)
    length, pending = await pipe.execute(raise_on_error=False)
    if isinstance(length, Exception):
        raise length
    if isinstance(pending, ResponseError):  # NOGROUP: no worker has created it yet
        return QueueStats(int(length), 0)
    if isinstance(pending, Exception):
        raise pending
    return QueueStats(int(length), int(pending["pending"]))


class QueueMonitor:
    """Refreshes the queue gauges every ``interval_s`` while Redis is up."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: QueueKeys,
        metrics: Metrics,
        health: RedisHealth,
        interval_s: float,
    ) -> None:
        self.client, self.keys, self.metrics = client, keys, metrics
        self.health, self.interval_s = health, interval_s
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> QueueStats | None:
        """Read and export once; None when Redis is down."""
        if not self.health.up:
            return None
        try:
            stats = await read_stats(self.client, self.keys)
        except REDIS_DOWN as exc:
            self.health.mark_down(exc)
            return None
        m, k = self.metrics, self.keys
        m.queue_length.labels(k.frames).set(stats.length)
        m.queue_pending.labels(k.frames, k.group).set(stats.pending)
        m.queue_lag.labels(k.frames, k.group).set(stats.lag)
        return stats

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("queue stats failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        """Start exporting in the background."""
        self._task = asyncio.create_task(self._run(), name="queue-monitor")

    async def stop(self) -> None:
        """Stop exporting."""
        await cancel_task(self._task)
