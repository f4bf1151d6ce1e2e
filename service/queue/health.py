"""Is Redis reachable? A periodic PING plus immediate marking down on errors.

Callers check :attr:`RedisHealth.up` before touching Redis, so while it is down every
request fails in microseconds instead of waiting on a socket; the probe flips it back
(after ``on_recover``, e.g. re-creating the consumer group) when Redis returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from prometheus_client import Gauge

from service.metrics import Metrics
from service.queue.streams import REDIS_DOWN
from service.queue.tasks import cancel_task

log = logging.getLogger(__name__)


class RedisHealth:
    """Reachability of one Redis, exported as ``lineinspect_redis_up`` (and ``gauges``)."""

    def __init__(
        self,
        client: aioredis.Redis,
        interval_s: float,
        metrics: Metrics,
        on_recover: Callable[[], Awaitable[None]] | None = None,
        gauges: tuple[Gauge, ...] | None = None,
    ) -> None:
        self.client, self.interval_s = client, interval_s
        self.on_recover = on_recover
        self._gauges = gauges if gauges is not None else (metrics.redis_up,)
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._export(0)

    def _export(self, value: int) -> None:
        for gauge in self._gauges:
            gauge.set(value)

    @property
    def up(self) -> bool:
        """True while the last probe or command succeeded."""
        return self._up.is_set()

    def mark_down(self, exc: BaseException) -> None:
        """Record a failed command; the next probe decides when Redis is back."""
        if self._up.is_set():
            log.warning("Redis unreachable: %s", exc)
        self._up.clear()
        self._export(0)

    async def probe(self) -> bool:
        """PING once; on the transition to up, run ``on_recover`` first."""
        try:
            await self.client.ping()
            if not self._up.is_set() and self.on_recover is not None:
                await self.on_recover()
        except REDIS_DOWN as exc:
            self.mark_down(exc)
            return False
        if not self._up.is_set():
            log.info("Redis reachable")
        self._up.set()
        self._export(1)
        return True

    async def wait_up(self, timeout: float | None = None) -> bool:
        """Wait until Redis is up (at most ``timeout`` seconds); returns whether it is."""
        if not self._up.is_set():
            waiter = asyncio.ensure_future(self._up.wait())
            done, _ = await asyncio.wait([waiter], timeout=timeout)
            if not done:
                waiter.cancel()
        return self._up.is_set()

    async def _run(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:  # never let the probe die; it is what brings us back
                log.exception("Redis health probe failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        """Start probing in the background."""
        self._task = asyncio.create_task(self._run(), name="redis-health")

    async def stop(self) -> None:
        """Stop probing."""
        await cancel_task(self._task)
