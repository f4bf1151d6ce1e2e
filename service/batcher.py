"""Dynamic batching of frames for one model session, on dedicated threads.

Frames from all clients queue here; an inference thread takes up to ``max_batch``
frames, waiting at most ``max_delay`` after the first one, runs them as one batch and
post-processes them. The queue is bounded (full → :class:`QueueFull`), expired frames
are never run (→ :class:`DeadlineExceeded`), and cancelled frames are skipped. Results
travel through ``concurrent.futures.Future``; asyncio callers also hand in a waiter that
:func:`wake` resolves once per batch, so they await without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from models.processing import (
    Detections,
    LetterboxInfo,
    PostprocessConfig,
    batch_inputs,
    postprocess,
)
from service.engine import ModelSession
from service.errors import DeadlineExceeded, NotReady, QueueFull, retry_after_s
from service.metrics import Metrics
from service.threads import name_os_thread

log = logging.getLogger(__name__)


@dataclass
class BatchItem:
    """One preprocessed frame waiting for inference."""

    tensor: np.ndarray  # letterboxed [S,S,3] uint8, or preprocessed [3,S,S] float32
    info: LetterboxInfo
    size: tuple[int, int]  # original (width, height)
    deadline: float  # time.monotonic() seconds
    future: Future[Detections] = field(default_factory=Future)
    # An asyncio caller's wake-up, set once ``future`` is settled: see :func:`wake`.
    waiter: asyncio.Future[None] | None = None
    enqueued: float = field(default_factory=time.monotonic)
    queue_wait: float = 0.0
    inference_time: float = 0.0
    input_time: float = 0.0  # the batch's assembly into one tensor
    output_time: float = 0.0  # the batch's post-processing


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for w in waiters:
        if not w.done():  # a caller that timed out has cancelled its own
            w.set_result(None)


def wake(items: Sequence[BatchItem]) -> None:
    """Wake the asyncio callers of settled ``items``: one ``call_soon_threadsafe`` per
    event loop and batch. ``asyncio.wrap_future`` would cost one per frame, each a
    self-pipe write that wakes the loop while this thread still holds the GIL for the
    rest of the batch (docs/benchmarks.md)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for item in items:
        if item.waiter is not None:
            by_loop.setdefault(item.waiter.get_loop(), []).append(item.waiter)
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits on it
            loop.call_soon_threadsafe(_release, waiters)


@dataclass(frozen=True)
class BatchRun:
    """The detections of one batch and where its time went, in seconds."""

    dets: list[Detections]
    input_s: float  # assembling the batch into one tensor
    inference_s: float  # the model run alone
    output_s: float  # post-processing


def run_batch(
    session: ModelSession,
    tensors: Sequence[np.ndarray],
    infos: Sequence[LetterboxInfo],
    sizes: Sequence[tuple[int, int]],
    post: PostprocessConfig,
) -> BatchRun:
    """Assemble, run and post-process one batch of prepared inputs (the batcher's
    inference threads and offline ``predict`` both run batches through this)."""
    t_in = time.perf_counter()
    x = batch_inputs(list(tensors))
    t0 = time.perf_counter()
    raw = session.run(x)
    spent = time.perf_counter() - t0
    dets = postprocess(raw, session.spec, infos, sizes, post.conf_thr, post.iou_thr, post.max_det)
    return BatchRun(dets, t0 - t_in, spent, time.perf_counter() - t0 - spent)


class Batcher:
    """Bounded queue + inference threads for one :class:`ModelSession`."""

    def __init__(
        self,
        session: ModelSession,
        post: PostprocessConfig,
        metrics: Metrics,
        max_batch: int = 8,
        max_delay_s: float = 0.002,
        queue_size: int = 256,
        threads: int = 1,
    ) -> None:
        self.session, self.post, self.metrics = session, post, metrics
        self.max_batch, self.max_delay_s, self.queue_size = max_batch, max_delay_s, queue_size
        self._queue: deque[BatchItem] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._label = session.key
        self._started = threading.Barrier(threads + 1)  # the threads are named on return
        self._threads = [
            threading.Thread(
                target=self._loop,
                args=(f"infer-{i}",),
                name=f"infer-{session.key}-{i}",
                daemon=True,
            )
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()
        self._started.wait()

    def submit(self, item: BatchItem) -> Future[Detections]:
        """Queue a frame; raises :class:`QueueFull` at the bound, ``NotReady`` once closed."""
        with self._cond:
            if self._closing:
                raise NotReady(f"model {self._label} is shutting down")
            if len(self._queue) >= self.queue_size:
                self.metrics.dropped.labels("queue_full").inc()
                raise QueueFull(
                    f"queue for {self._label} is full ({self.queue_size} frames)",
                    retry_after=retry_after_s(self.max_delay_s),
                )
            self._queue.append(item)
            self.metrics.queue_depth.labels(self._label).set(len(self._queue))
            self._cond.notify()
        return item.future

    def depth(self) -> int:
        """Frames waiting now."""
        return len(self._queue)

    def _take_batch(self) -> list[BatchItem] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            first_at = self._queue[0].enqueued
            # Wait for the batch to fill, at most max_delay after its first frame arrived.
            while len(self._queue) < self.max_batch and not self._closing:
                remaining = first_at + self.max_delay_s - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            n = min(self.max_batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self.metrics.queue_depth.labels(self._label).set(len(self._queue))
            return batch

    def _runnable(self, batch: Sequence[BatchItem]) -> list[BatchItem]:
        now = time.monotonic()
        live: list[BatchItem] = []
        for item in batch:
            if not item.future.set_running_or_notify_cancel():
                continue  # the caller gave up (its own deadline/timeout); never run
            if now > item.deadline:
                self.metrics.dropped.labels("deadline").inc()
                item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
                continue
            item.queue_wait = now - item.enqueued
            live.append(item)
        return live

    def _loop(self, os_name: str) -> None:
        name_os_thread(os_name)
        self._started.wait()
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            try:
                live = self._runnable(batch)
                if live:
                    self._run(live)
            except Exception as exc:  # a model failure must fail these frames, not the thread
                log.exception("batch of %d failed on %s", len(batch), self._label)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
            finally:
                wake(batch)

    def _run(self, live: list[BatchItem]) -> None:
        run = run_batch(
            self.session,
            [it.tensor for it in live],
            [it.info for it in live],
            [it.size for it in live],
            self.post,
        )
        self.metrics.inference_duration.labels(self._label).observe(run.inference_s)
        self.metrics.batch_size.labels(self._label).observe(len(live))
        v = self.session.version
        self.metrics.model_stats.execution(
            (v.name, v.version), len(live), run.input_s, run.inference_s, run.output_s
        )
        for item, det in zip(live, run.dets, strict=True):
            self.metrics.queue_wait.labels(self._label).observe(item.queue_wait)
            item.inference_time, item.input_time = run.inference_s, run.input_s
            item.output_time = run.output_s
            item.future.set_result(det)

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting frames, finish every queued one, join the threads."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
