"""Worker liveness: a heartbeat per worker, and finding the frames of workers that died.

Every worker sets ``<prefix>:alive:<consumer>`` with a lifetime of
``redis_heartbeat_ttl_ms`` and refreshes it every quarter of that lifetime. Every
quarter, each worker also looks at the consumers holding pending frames (one XPENDING
summary) and checks their heartbeat keys: a consumer whose key has expired is dead,
and its pending frames are claimed at once (XCLAIM, see
:meth:`service.queue.worker.InferenceWorker.reclaim_dead`). So the frames of a
SIGKILLed worker are answered within about ``1.25 * redis_heartbeat_ttl_ms`` plus their
inspection, well inside the default 2 s deadline; idle-time reclaim
(``redis_reclaim_idle_ms``) stays as the backstop for a worker that heartbeats but is
stuck.

A live worker misjudged as dead (its event loop stalled longer than three quarters of
the lifetime) costs duplicate work only: the delivery script answers a frame once.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from service.queue.streams import QueueKeys, text


@dataclass(frozen=True)
class Pending:
    """One pending frame: its entry id, who holds it and how often it was delivered."""

    entry_id: str
    consumer: str
    deliveries: int


class Liveness:
    """The heartbeat of one worker and the view of the others' heartbeats."""

    def __init__(self, client: aioredis.Redis, keys: QueueKeys, consumer: str, ttl_ms: int) -> None:
        self.client, self.keys, self.consumer, self.ttl_ms = client, keys, consumer, ttl_ms

    @property
    def period_s(self) -> float:
        """How often the heartbeat is refreshed and the others are checked."""
        return self.ttl_ms / 4000

    @property
    def claim_idle_ms(self) -> int:
        """Minimum idle time of a dead worker's frame to claim it.

        Frames a worker read after its last heartbeat are idle for at least three
        quarters of the lifetime once its key expired; a frame a survivor has just
        claimed is idle for less than half, so a second survivor never takes it too.
        """
        return self.ttl_ms // 2

    async def beat(self) -> None:
        """Refresh this worker's heartbeat key."""
        await self.client.set(self.keys.alive(self.consumer), b"1", px=self.ttl_ms)

    async def forget(self) -> None:
        """Remove the heartbeat (clean shutdown: nothing of ours is pending any more)."""
        await self.client.delete(self.keys.alive(self.consumer))

    async def dead_consumers(self) -> list[str]:
        """Other consumers that hold pending frames and whose heartbeat has lapsed."""
        try:
            summary = await self.client.xpending(self.keys.frames, self.keys.group)
        except ResponseError:  # NOGROUP: nothing is pending anywhere
            return []
        holders = [
            name
            for c in summary.get("consumers") or ()
            if int(c["pending"]) > 0 and (name := text(c["name"])) != self.consumer
        ]
        if not holders:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name in holders:
            pipe.exists(self.keys.alive(name))
        alive = await pipe.execute()
        return [name for name, up in zip(holders, alive, strict=True) if not up]

    async def pending(
        self,
        count: int,
        consumer: str | None = None,
        idle_ms: int | None = None,
        after: str | None = None,
    ) -> list[Pending]:
        """Up to ``count`` pending frames, oldest first: of ``consumer`` (None = any),
        idle at least ``idle_ms``, with ids after ``after``."""
        rows = await self.client.xpending_range(
            self.keys.frames,
            self.keys.group,
            f"({after}" if after else "-",
            "+",
            count,
            consumername=consumer,
            idle=idle_ms,
        )
        return [
            Pending(text(r["message_id"]), text(r["consumer"]), int(r["times_delivered"]))
            for r in rows
        ]
