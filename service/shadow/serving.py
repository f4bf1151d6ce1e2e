"""Shadow serving: a lineage's shadow version sees a fraction of live frames, after the
production answer, and is compared with it.

The observer (:meth:`ShadowServing.observe`, on the event loop, after every answer on
every edge) only decides and enqueues: a frame of a lineage whose shadow runs is picked
with probability ``shadow_fraction``; it is dropped and counted when production has a
full batch waiting (``busy``) or the bounded queue is full (``queue_full``). One shadow
thread, at niceness :data:`SHADOW_NICE`, takes what is queued (up to a small batch),
drops a frame when production has any frame waiting (``busy`` again), runs the rest as
one batch of the shadow version (:class:`service.shadow.engine.ShadowModel`), compares
(:func:`service.shadow.compare.compare`). Nothing here can delay or fail an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from service.config import Settings
from service.frames import Frame
from service.manager import ModelManager
from service.metrics import Metrics
from service.records import DetectionRecord
from service.registry import Registry, parse_ref
from service.shadow.compare import OUTCOMES, compare
from service.shadow.engine import SHADOW_BATCH, ShadowModel
from service.shadow.record import noted
from service.shadow.summary import ShadowSummary, Tally
from service.threads import name_os_thread

log = logging.getLogger(__name__)

#: Niceness of the shadow thread: the scheduler runs it only when production leaves
#: CPU over.
SHADOW_NICE = 10
#: Production is busy (the shadow thread drops the frame in hand) while its batcher has
#: this many frames waiting: any at all, so a shadow run starts only when production's
#: queue is empty. A frame is not even queued while a full batch (``max_batch``) waits.
BUSY_DEPTH = 1
DROP_REASONS = ("queue_full", "busy", "stale", "no_image", "error")


@dataclass(frozen=True)
class _Job:
    frame: Frame
    record: DetectionRecord
    pair: tuple[int, int]  # (production, shadow) versions when it was picked


class ShadowServing:
    """Observer + bounded queue + shadow thread + the per-lineage tallies."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        manager: ModelManager,
        metrics: Metrics,
        capture: Any = None,
    ) -> None:
        self.settings, self.registry, self.manager = settings, registry, manager
        self.metrics, self.capture = metrics, capture
        self.lineages: dict[str, Any] = {}  # name -> its configured (production) ref
        for ref in settings.models:
            r = parse_ref(ref)
            self.lineages.setdefault(r.name, r)
        self._queue: queue.Queue[_Job | None] = queue.Queue(settings.shadow_queue_size)
        self._rand = random.Random().random
        self._lock = threading.Lock()
        self._tallies: dict[str, Tally] = {}
        self._models: dict[str, ShadowModel] = {}
        self._failed: set[tuple[str, int]] = set()
        self._busy_at_pick = settings.max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        for name in self.lineages:  # every series exists from start-up
            for outcome in OUTCOMES:
                metrics.shadow_frames.labels(name, outcome)
            for reason in DROP_REASONS:
                metrics.shadow_dropped.labels(name, reason)
            metrics.shadow_latency.labels(name)
            metrics.shadow_precision.labels(name).set(float("nan"))
            metrics.shadow_recall.labels(name).set(float("nan"))

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the shadow thread (call from the event loop that answers frames)."""
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the frame in hand; queued shadow work is dropped."""
        self._stopping = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def pending(self) -> int:
        """Frames queued or being shadowed now."""
        return self._queue.unfinished_tasks

    # --- which version shadows which ------------------------------------------------------
    def pair(self, name: str) -> tuple[int, int] | None:
        """(production, shadow) versions of ``name`` now; None when no shadow runs."""
        ref = self.lineages.get(name)
        if ref is None:
            return None
        aliases = self.manager.aliases(name)
        prod = ref.version if ref.version is not None else aliases.get(ref.alias)
        shadow = aliases.get(self.settings.shadow_alias)
        if shadow is None and self.settings.shadow_fallback_candidate:
            shadow = aliases.get("candidate")
        if prod is None or shadow is None or shadow == prod:
            return None
        return (prod, shadow)

    def summary(self, name: str) -> ShadowSummary | None:
        """The comparison of ``name``'s current pair so far; None when no shadow runs."""
        pair = self.pair(name) if self.settings.shadow_enabled else None
        if pair is None:
            return None
        with self._lock:
            return self._tally(name, pair).summary()

    def _tally(self, name: str, pair: tuple[int, int]) -> Tally:
        """The tally of ``pair`` (a new pair starts from zero); call under the lock."""
        t = self._tallies.get(name)
        if t is None or (t.production_version, t.shadow_version) != pair:
            t = self._tallies[name] = Tally(name, *pair)
            self.metrics.shadow_precision.labels(name).set(float("nan"))
            self.metrics.shadow_recall.labels(name).set(float("nan"))
        return t

    # --- on the event loop: after the answer ------------------------------------------------
    def observe(self, frame: Frame, record: DetectionRecord) -> None:
        """Maybe queue ``frame`` for the shadow; never blocks, never raises."""
        s = self.settings
        if not s.shadow_enabled or self._rand() >= s.shadow_fraction:
            return
        name = record.model.name
        pair = self.pair(name)
        if pair is None or record.model.version != pair[0]:
            return  # no shadow, or answered by another version than production
        if not frame.data:
            self._drop(name, "no_image", pair)  # a preprocessed tensor (KServe FP32)
        elif self.manager.waiting(name, pair[0]) >= self._busy_at_pick:
            self._drop(name, "busy", pair)
        else:
            try:
                self._queue.put_nowait(_Job(frame, record, pair))
            except queue.Full:
                self._drop(name, "queue_full", pair)

    def _drop(self, name: str, reason: str, pair: tuple[int, int] | None = None) -> None:
        self.metrics.shadow_dropped.labels(name, reason).inc()
        with self._lock:
            t = self._tally(name, pair) if pair is not None else self._tallies.get(name)
            if t is not None:
                t.dropped += 1

    # --- the shadow thread ----------------------------------------------------------------
    def _run(self) -> None:
        name_os_thread("shadow")
        if hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):  # Linux: a thread id names one thread
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)
        while not self._stopping:
            jobs = self._take()
            live = [j for j in jobs if j is not None]
            try:
                if live and not self._stopping:
                    self._shadow(live)
            except Exception:
                log.exception("shadow inference failed (no answer was affected)")
                for j in live:
                    self._drop(j.record.model.name, "error")
            finally:
                for _ in jobs:
                    self._queue.task_done()

    def _take(self) -> list[_Job | None]:
        """The next frame (waiting for it) and up to a batch of those queued behind it."""
        jobs = [self._queue.get()]
        while len(jobs) < SHADOW_BATCH:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return jobs

    def _model(self, name: str, version: int) -> ShadowModel | None:
        m = self._models.get(name)
        if m is not None and m.version.version == version:
            return m
        if (name, version) in self._failed:
            return None
        try:
            m = ShadowModel.load(self.registry.get(name, version), self.settings)
        except Exception:
            log.exception("cannot load shadow %s:%d; not shadowing it", name, version)
            self._failed.add((name, version))
            return None
        self._models[name] = m  # the previous shadow version is released here
        return m

    def _shadow(self, jobs: list[_Job]) -> None:
        """Run what is still worth running as one batch per shadow version, compare."""
        groups: dict[tuple[str, tuple[int, int]], list[_Job]] = {}
        for job in jobs:
            name = job.record.model.name
            if self.pair(name) != job.pair:
                self._drop(name, "stale")  # an alias moved while it waited
            elif self.manager.waiting(name, job.pair[0]) >= BUSY_DEPTH:
                self._drop(name, "busy", job.pair)
            else:
                groups.setdefault((name, job.pair), []).append(job)
        for (name, pair), group in groups.items():
            model = self._model(name, pair[1])
            if model is None:
                for _job in group:
                    self._drop(name, "error", pair)
                continue
            t0 = time.perf_counter()
            records = model.inspect([j.frame for j in group])
            spent = time.perf_counter() - t0  # each frame's latency: its batch's
            for job, shadow in zip(group, records, strict=True):
                if shadow is None:
                    self._drop(name, "error", pair)
                else:
                    self._account(job, shadow, spent)

    def _account(self, job: _Job, shadow: DetectionRecord, spent: float) -> None:
        name = job.record.model.name
        c = compare(job.record, shadow)
        m = self.metrics
        m.shadow_latency.labels(name).observe(spent)
        m.shadow_frames.labels(name, c.outcome).inc()
        with self._lock:
            t = self._tally(name, job.pair)
            t.add(c, spent)
            precision, recall = t.precision, t.recall
        if precision is not None:
            m.shadow_precision.labels(name).set(precision)
        if recall is not None:
            m.shadow_recall.labels(name).set(recall)
        if c.disagrees and self.capture is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                self._loop.call_soon_threadsafe(self._offer, job.frame, noted(job.record, shadow))

    def _offer(self, frame: Frame, record: DetectionRecord) -> None:
        """On the loop (where capture's samplers live): offer a disagreement."""
        try:
            self.capture.offer_disagreement(frame, record)
        except Exception:
            log.exception("capture of a shadow disagreement failed")


def install(settings: Settings, ctx: Any, capture: Any) -> ShadowServing | None:
    """Start shadow serving for the in-process backend and observe every answered frame;
    None when it is off or there are no local models (``queue=redis``: the inference
    workers shadow, see docs/learning.md)."""
    from service.observers import observe

    if not settings.shadow_enabled or ctx.manager is None:
        return None
    shadow = ShadowServing(settings, ctx.registry, ctx.manager, ctx.metrics, capture)
    shadow.start()
    observe(ctx, shadow)
    return shadow
