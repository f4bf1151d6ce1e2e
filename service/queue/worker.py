"""The inference worker loop: consume the frame stream with the local :class:`Inspector`.

Frames read from the consumer group (and frames claimed from dead workers, see
:mod:`service.queue.liveness`) are inspected concurrently, so the model's
:class:`service.batcher.Batcher` forms batches of up to ``max_batch`` within
``max_delay_ms`` exactly as in the single-node service. Each answer is delivered with
one Lua script that also acknowledges and deletes the entry (see :mod:`service.queue`);
a delivery that fails because Redis is down leaves
the entry pending, to be reclaimed once Redis is back. A frame delivered
``redis_dead_letter_after`` times to workers that all died is a poison frame: it goes to
``<prefix>:dead`` and is answered with :class:`service.errors.DeadLettered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.exceptions import ResponseError

from service.config import Settings
from service.errors import DeadlineExceeded, LineInspectError
from service.frames import Frame
from service.inspector import Inspector
from service.metrics import Metrics
from service.observers import FrameObserver
from service.queue.codec import QueuedFrame, decode_entry, error_reply, ok_reply
from service.queue.deadletter import dead_letter
from service.queue.health import RedisHealth
from service.queue.liveness import Liveness, Pending
from service.queue.monitor import QueueMonitor
from service.queue.streams import (
    DELIVER_LUA,
    REDIS_DOWN,
    QueueKeys,
    connect,
    ensure_group,
    is_nogroup,
    process_name,
    stream_entries,
    text,
)
from service.queue.tasks import cancel_task
from service.records import DetectionRecord

log = logging.getLogger(__name__)


class InferenceWorker:
    """One consumer of the frame stream. ``await start()`` once models are warm."""

    def __init__(
        self,
        settings: Settings,
        inspector: Inspector,
        metrics: Metrics,
        consumer: str | None = None,
    ) -> None:
        s = self.settings = settings
        self.inspector, self.metrics = inspector, metrics
        self.keys = QueueKeys.from_settings(settings)
        self.consumer = consumer or settings.worker_consumer or process_name()
        self.prefetch = settings.worker_prefetch or 2 * s.max_batch * s.inference_threads
        self.client = connect(settings)
        self._read_client = connect(settings, block_ms=s.redis_block_ms)
        self.health = RedisHealth(self.client, s.redis_health_ms / 1000, metrics, self._recover)
        self.monitor = QueueMonitor(
            self.client, self.keys, metrics, self.health, s.redis_stats_interval_s
        )
        self._deliver = self.client.register_script(DELIVER_LUA)
        self.liveness = Liveness(self.client, self.keys, self.consumer, s.redis_heartbeat_ttl_ms)
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._slot_freed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        #: Shown every answered frame after its reply is delivered (shadow serving).
        self.observers: list[FrameObserver] = []
        m = metrics
        for series in (m.queue_reclaimed, m.queue_duplicates, m.queue_dead_letters):
            series.labels(self.keys.frames)  # export zeros, so rate() has data from the start
        for reason in ("expired", "malformed"):
            metrics.dropped.labels(reason)

    async def _recover(self) -> None:
        await ensure_group(self.client, self.keys)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Join the group and start reading, reclaiming and exporting queue stats."""
        if await self.health.probe():
            with contextlib.suppress(*REDIS_DOWN):
                await self.liveness.beat()  # alive before the first frame is read
        self.health.start()
        self.monitor.start()
        self._loops = [
            asyncio.create_task(self._read_loop(), name="worker-read"),
            asyncio.create_task(self._reclaim_loop(), name="worker-reclaim"),
            asyncio.create_task(self._liveness_loop(), name="worker-liveness"),
        ]
        log.info(
            "worker %s consuming %s (group %s)", self.consumer, self.keys.frames, self.keys.group
        )

    @property
    def ready(self) -> bool:
        """True while Redis answers and the read loop runs."""
        return self.health.up and bool(self._loops) and not self._loops[0].done()

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop reading, finish (deliver) the frames in hand, close the connections."""
        self._stopping = True
        if self._loops:
            read, reclaim, liveness = self._loops
            await cancel_task(reclaim)
            await asyncio.wait([read], timeout=self.settings.redis_block_ms / 1000 + 2)
            await cancel_task(read)
            if self._in_flight:  # heartbeating on: the frames in hand stay ours
                await asyncio.wait(list(self._in_flight.values()), timeout=timeout)
            await cancel_task(liveness)
            with contextlib.suppress(*REDIS_DOWN):
                await self.liveness.forget()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=timeout)
        await self.monitor.stop()
        await self.health.stop()
        await self.client.aclose()
        await self._read_client.aclose()

    # --- reading --------------------------------------------------------------------------
    async def _free_slots(self) -> int:
        while len(self._in_flight) >= self.prefetch:
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return self.prefetch - len(self._in_flight)

    async def _read_loop(self) -> None:
        while not self._stopping:
            free = await self._free_slots()
            if not await self.health.wait_up(timeout=1.0):
                continue
            try:
                resp = await self._read_client.xreadgroup(
                    self.keys.group,
                    self.consumer,
                    {self.keys.frames: ">"},
                    count=min(free, self.settings.max_batch),
                    block=self.settings.redis_block_ms,
                )
            except REDIS_DOWN as exc:
                self.health.mark_down(exc)
                continue
            except ResponseError as exc:
                if not is_nogroup(exc):
                    raise
                await self._regroup()
                continue
            for entry_id, fields in stream_entries(resp):
                self._spawn(entry_id, fields)

    async def _regroup(self) -> None:
        log.warning("consumer group %s vanished (Redis restarted?); recreating it", self.keys.group)
        try:
            await ensure_group(self.client, self.keys)
        except REDIS_DOWN as exc:
            self.health.mark_down(exc)

    async def reclaim_once(self) -> int:
        """Take over frames pending longer than ``redis_reclaim_idle_ms``; returns how many.

        The backstop for a worker that heartbeats but does not finish its frames.
        """
        idle, after, claimed = self.settings.redis_reclaim_idle_ms, None, 0
        while (free := self.prefetch - len(self._in_flight)) > 0:
            page = await self.liveness.pending(
                min(free, self.settings.max_batch), idle_ms=idle, after=after
            )
            if not page:
                break
            claimed += await self._take_over(page, idle)
            after = page[-1].entry_id
        if claimed:
            log.warning("reclaimed %d frames from idle consumers", claimed)
        return claimed

    async def reclaim_dead(self) -> int:
        """Heartbeat, then claim the frames of consumers whose heartbeat lapsed."""
        await self.liveness.beat()
        claimed = 0
        for name in [] if self._stopping else await self.liveness.dead_consumers():
            taken = 0
            while (free := self.prefetch - len(self._in_flight)) > 0:
                page = await self.liveness.pending(min(free, self.settings.max_batch), name)
                got = await self._take_over(page, self.liveness.claim_idle_ms)
                taken += got
                if not got:
                    break
            if taken:
                log.warning("consumer %s stopped heartbeating; took over %d frames", name, taken)
            claimed += taken
        return claimed

    async def _take_over(self, page: list[Pending], min_idle_ms: int) -> int:
        """XCLAIM ``page`` (those still idle ``min_idle_ms``) and process or dead-letter
        each; returns how many were claimed."""
        wanted = {p.entry_id: p for p in page if p.entry_id not in self._in_flight}
        if not wanted:
            return 0
        claimed: list[Any] = await self.client.xclaim(
            self.keys.frames, self.keys.group, self.consumer, min_idle_ms, list(wanted)
        )
        count = 0
        for entry_id, fields in claimed:
            eid = text(entry_id) if entry_id is not None else ""
            if fields is None or eid not in wanted or eid in self._in_flight:
                continue  # deleted meanwhile
            count += 1
            deliveries = wanted[eid].deliveries
            if deliveries >= self.settings.redis_dead_letter_after:
                self._spawn(eid, fields, dead_after=deliveries)
            else:
                self.metrics.queue_reclaimed.labels(self.keys.frames).inc()
                self._spawn(eid, fields)
        return count

    async def _liveness_loop(self) -> None:
        while True:
            if self.health.up:
                try:
                    await self.reclaim_dead()
                except REDIS_DOWN as exc:
                    self.health.mark_down(exc)
                except ResponseError as exc:
                    if not is_nogroup(exc):
                        log.exception("liveness check failed")
                except Exception:
                    log.exception("liveness check failed")
            await asyncio.sleep(self.liveness.period_s)

    async def _reclaim_loop(self) -> None:
        period = max(0.05, self.settings.redis_reclaim_idle_ms / 2000)
        while not self._stopping:
            await asyncio.sleep(period)
            if not self.health.up:
                continue
            try:
                await self.reclaim_once()
            except REDIS_DOWN as exc:
                self.health.mark_down(exc)
            except ResponseError as exc:
                if not is_nogroup(exc):
                    log.exception("reclaim failed")
            except Exception:
                log.exception("reclaim failed")

    # --- processing -----------------------------------------------------------------------
    def _spawn(self, entry_id: str, fields: dict[Any, Any], dead_after: int = 0) -> None:
        work = self._process(entry_id, fields, dead_after)
        task = asyncio.create_task(work, name=f"frame-{entry_id}")
        self._in_flight[entry_id] = task
        task.add_done_callback(lambda _t: self._finished(entry_id))

    def _finished(self, entry_id: str) -> None:
        self._in_flight.pop(entry_id, None)
        self._slot_freed.set()

    async def _process(self, entry_id: str, fields: dict[Any, Any], dead_after: int = 0) -> None:
        try:
            queued = decode_entry(fields)
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            log.error("malformed stream entry %s dropped: %r", entry_id, exc)
            self.metrics.dropped.labels("malformed").inc()
            await self._discard(entry_id)
            return
        picked = time.time()
        record_json, record = "", None
        if dead_after:
            payload = await dead_letter(
                self.client, self.settings, self.metrics, entry_id, fields, queued, dead_after
            )
        elif queued.frame.remaining() <= 0:
            self.metrics.dropped.labels("expired").inc()
            payload = error_reply(DeadlineExceeded("deadline passed while queued in Redis"))
        else:
            try:
                record = await self.inspector.inspect(queued.frame)
                record.timing_ms.queue = round(
                    record.timing_ms.queue + max(0.0, picked - queued.enqueued) * 1000, 3
                )
                payload, record_json = ok_reply(record), record.model_dump_json()
            except LineInspectError as exc:
                payload = error_reply(exc)
            except Exception:
                log.exception("inspecting frame %s failed", queued.frame.frame_id)
                payload = error_reply(LineInspectError("internal error in the inference worker"))
        await self._deliver_until_done(entry_id, queued, payload, record_json)
        if record is not None:
            self._show(queued.frame, record)

    def _show(self, frame: Frame, record: DetectionRecord) -> None:
        """After the reply went out: the observers' turn (they cannot refuse it now)."""
        for observer in self.observers:
            try:
                observer.observe(frame, record)
            except Exception:
                log.exception("%s failed (the answer was not affected)", type(observer).__name__)

    async def _deliver_until_done(
        self, entry_id: str, queued: QueuedFrame, payload: str, record_json: str
    ) -> None:
        s, k = self.settings, self.keys
        ttl_ms = int(s.redis_dedupe_ttl_s * 1000)
        # A record is the frame's answer for any retry of it; an error (deadline, dead
        # letter) answers only this request, so a retry is inspected afresh.
        marker = k.done(queued.once if record_json else queued.rid)
        keys = [k.frames, marker, queued.reply_to, k.results]
        args: list[str | int] = [
            k.group,
            entry_id,
            queued.rid,
            ttl_ms,
            payload,
            s.redis_reply_maxlen,
            ttl_ms,
            s.redis_results_maxlen,
            record_json,
        ]
        grace = s.redis_reclaim_idle_ms / 1000
        give_up = time.monotonic() + max(queued.frame.remaining(), 0) + grace
        while True:
            try:
                fresh = await self._deliver(keys=keys, args=args)
            except REDIS_DOWN as exc:
                self.health.mark_down(exc)
                left = give_up - time.monotonic()
                if self._stopping or left <= 0 or not await self.health.wait_up(timeout=left):
                    log.warning("frame %s not delivered (Redis down); it stays pending", entry_id)
                    return
                continue
            if not fresh:
                self.metrics.queue_duplicates.labels(k.frames).inc()
            return

    async def _discard(self, entry_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.keys.frames, self.keys.group, entry_id)
        pipe.xdel(self.keys.frames, entry_id)
        with contextlib.suppress(*REDIS_DOWN):
            await pipe.execute()
