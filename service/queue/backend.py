"""The API side of the Redis queue: append frames, wait for the workers' answers.

Implements :class:`service.frames.FrameBackend`. Used as an async context manager by
the app lifespan (connect, create the group, start the reply listener and probes).
Every request ends explicitly: its record, the worker's error, 429 (stream full), 503
(Redis unreachable, in microseconds while it is known down; also at once for every
frame in flight when the reply reader loses Redis, since their answers may be lost) or
504 (deadline).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from types import TracebackType

from service.config import Settings
from service.errors import DeadlineExceeded, QueueFull, Unavailable, retry_after_s
from service.frames import Frame
from service.integrity import check_present
from service.metrics import Metrics
from service.queue.codec import decode_reply, encode_entry
from service.queue.health import RedisHealth
from service.queue.monitor import QueueMonitor
from service.queue.streams import (
    ENQUEUE_LUA,
    REDIS_DOWN,
    QueueKeys,
    connect,
    ensure_group,
    process_name,
    stream_entries,
    text,
)
from service.queue.tasks import cancel_task
from service.records import DetectionRecord

log = logging.getLogger(__name__)


class RedisFrameBackend:
    """Frames go to the Redis stream; answers come back on this instance's reply stream."""

    def __init__(self, settings: Settings, metrics: Metrics, instance: str | None = None) -> None:
        self.settings, self.metrics = settings, metrics
        self.keys = QueueKeys.from_settings(settings)
        self.instance = instance or process_name(unique=True)
        self.reply_stream = self.keys.replies(self.instance)
        self.client = connect(settings)
        self._listen_client = connect(settings, block_ms=settings.redis_block_ms)
        self.health = RedisHealth(
            self.client,
            settings.redis_health_ms / 1000,
            metrics,
            self._on_recover,
            gauges=(metrics.redis_up, metrics.ready),
        )
        self.monitor = QueueMonitor(
            self.client, self.keys, metrics, self.health, settings.redis_stats_interval_s
        )
        self._enqueue = self.client.register_script(ENQUEUE_LUA)
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._listener: asyncio.Task[None] | None = None
        for reason in ("deadline", "queue_full", "unavailable"):
            metrics.dropped.labels(reason)  # export zeros, so rate() has data from the start

    # --- lifecycle ----------------------------------------------------------------------
    async def _on_recover(self) -> None:
        await ensure_group(self.client, self.keys)

    async def __aenter__(self) -> RedisFrameBackend:
        await self.health.probe()  # not fatal: the probe keeps trying, readiness says 503
        self.health.start()
        self.monitor.start()
        self._listener = asyncio.create_task(self._listen(), name="redis-replies")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cancel_task(self._listener)
        await self.monitor.stop()
        await self.health.stop()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(Unavailable("the service is shutting down"))
        await self.client.aclose()
        await self._listen_client.aclose()

    @property
    def ready(self) -> bool:
        """True while Redis answers and the reply listener runs."""
        return self.health.up and self._listener is not None and not self._listener.done()

    # --- the hot path -------------------------------------------------------------------
    def _down(self, exc: BaseException) -> Unavailable:
        self.health.mark_down(exc)
        self.metrics.dropped.labels("unavailable").inc()
        return Unavailable(f"the frame queue (Redis) is unreachable: {exc}")

    async def inspect(self, frame: Frame) -> DetectionRecord:
        """Queue the frame and wait for its answer until the frame's deadline (the
        worker checks its digest before decoding it)."""
        if frame.remaining() <= 0:
            self.metrics.dropped.labels("deadline").inc()
            raise DeadlineExceeded("frame arrived after its deadline")
        check_present(frame.image_sha256, self.settings.require_image_digest)
        if not self.health.up:
            self.metrics.dropped.labels("unavailable").inc()
            raise Unavailable("the frame queue (Redis) is unreachable; retry later")
        rid = uuid.uuid4().hex
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            entry_args = encode_entry(frame, rid, self.reply_stream)
            args: list[bytes | str | int] = [self.settings.redis_stream_maxlen, *entry_args]
            try:
                entry = await self._enqueue(keys=[self.keys.frames], args=args)
            except REDIS_DOWN as exc:
                raise self._down(exc) from None
            if entry is None:
                self.metrics.dropped.labels("queue_full").inc()
                raise QueueFull(
                    f"frame queue is full ({self.settings.redis_stream_maxlen} frames waiting)",
                    retry_after=retry_after_s(self.settings.max_delay_ms / 1000),
                )
            remaining = frame.remaining()
            try:
                payload = await asyncio.wait_for(fut, max(remaining, 0.0))
            except TimeoutError:
                self.metrics.dropped.labels("deadline").inc()
                raise DeadlineExceeded(
                    f"no answer from the workers within the deadline ({remaining * 1000:.0f} ms)"
                ) from None
        finally:
            self._waiting.pop(rid, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # failed by the reply reader while enqueueing: retrieved here
        record = decode_reply(payload)
        record.timing_ms.total = round((time.perf_counter() - frame.received) * 1000, 3)
        t = record.timing_ms
        self.metrics.model_stats.success(
            (record.model.name, record.model.version),
            t.total / 1000,
            t.queue / 1000,
            t.inference / 1000,
        )
        return record

    # --- replies ------------------------------------------------------------------------
    async def _listen(self) -> None:
        """Resolve waiting requests from the reply stream; survives Redis outages."""
        last_id = "0-0"
        block = self.settings.redis_block_ms
        while True:
            if not await self.health.wait_up(timeout=1.0):
                continue
            try:
                resp = await self._listen_client.xread(
                    {self.reply_stream: last_id}, count=512, block=block
                )
            except REDIS_DOWN as exc:
                self.health.mark_down(exc)
                self._fail_waiting(exc)
                continue
            except Exception:
                log.exception("reading replies failed; retrying")
                await asyncio.sleep(0.1)
                continue
            for entry_id, fields in stream_entries(resp):
                last_id = entry_id
                self._resolve(fields)

    def _fail_waiting(self, exc: BaseException) -> None:
        """Answer every frame in flight 503 now: its reply may be lost with Redis, so
        waiting until its deadline would only turn a retryable error into a 504."""
        failed = 0
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(
                    Unavailable(
                        f"the frame queue (Redis) was lost while this frame was in flight ({exc}); "
                        "retry with the same frame id"
                    )
                )
                failed += 1
        if failed:
            self.metrics.dropped.labels("unavailable").inc(failed)
            log.warning("reply reader lost Redis: %d frames in flight answered 503", failed)

    def _resolve(self, fields: dict[bytes, bytes]) -> None:
        rid = text(fields.get(b"rid", b""))
        fut = self._waiting.get(rid)
        if fut is None or fut.done():
            log.debug("late or unknown reply %s ignored (its request already ended)", rid)
            return
        fut.set_result(fields[b"reply"])
