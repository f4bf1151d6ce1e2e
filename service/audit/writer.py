"""The audit writer: one thread draining a bounded queue into the store in batches.

:meth:`AuditWriter.submit` runs on the event loop and only queues (a full queue, or
queued images over ``max_bytes``, drops the row and counts it). The thread takes rows
until ``batch_size`` or ``flush_s`` after the first, hashes the images, and writes the
batch in one insert-or-ignore. A failing database keeps the batch and retries it with
backoff (rows queue up meanwhile, then drop as ``queue_full``); :attr:`failing` says so
until a write succeeds again, which is what ``audit: required`` refuses frames on.
Retention runs in the same thread every ``retention_every_s``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from service.audit.rows import Entry, row_values
from service.audit.trail import apply_retention, write_rows
from service.errors import StoreError
from service.store.store import Store
from service.thresholds import ServedThresholds

log = logging.getLogger(__name__)

#: Longest wait between two retries of a batch the database refused.
MAX_BACKOFF_S = 1.0
#: Every reason a row may be dropped for (each series exists from start-up).
DROP_REASONS = ("queue_full", "db_failing", "error")


class AuditWriter:
    """Bounded queue + writer thread. :meth:`submit` never blocks."""

    def __init__(
        self,
        store: Store,
        metrics: Any,
        thresholds: ServedThresholds,
        size: int,
        batch_size: int,
        flush_s: float,
        max_bytes: int,
        retention_days: float | None = None,
        retention_every_s: float = 3600.0,
    ) -> None:
        self.store, self.metrics, self.thresholds = store, metrics, thresholds
        self.queue: queue.Queue[Entry | None] = queue.Queue(maxsize=size)
        self.batch_size, self.flush_s, self.max_bytes = batch_size, flush_s, max_bytes
        self.retention_days, self.retention_every_s = retention_days, retention_every_s
        self.failing = False
        self._bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_at = float("inf")
        self._next_retention = 0.0
        self.thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        metrics.audit_queue_depth.set_function(self.queue.qsize)

    # --- the loop side ------------------------------------------------------------------
    def submit(self, entry: Entry) -> bool:
        """Queue a row; False (dropped, counted ``queue_full``) when there is no room."""
        size = len(entry.data)
        with self._lock:
            if self._bytes + size > self.max_bytes:
                full = True
            else:
                full = False
                self._bytes += size
        if not full:
            try:
                self.queue.put_nowait(entry)
                return True
            except queue.Full:
                self._release(size)
        self.metrics.audit_dropped.labels("queue_full").inc()
        return False

    def _release(self, size: int) -> None:
        with self._lock:
            self._bytes -= size

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (giving up on a failing database after ``timeout``),
        then stop the thread."""
        if not self.thread.is_alive():
            return
        self._stop_at = time.monotonic() + timeout
        self._stop.set()
        with contextlib.suppress(queue.Full):  # wake the thread; it also polls the event
            self.queue.put_nowait(None)
        self.thread.join(timeout + 2.0)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued row is handled (tests, benchmarks); True when done."""
        end = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)
        return not self.queue.unfinished_tasks

    # --- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._retention()
            batch = self._collect()
            if batch:
                try:
                    self._write(batch)
                finally:
                    for _ in batch:
                        self.queue.task_done()
            elif self._stop.is_set() and self.queue.empty():
                return

    def _collect(self) -> list[Entry]:
        """Up to ``batch_size`` rows: wait for the first (briefly, so stop and retention
        are noticed), then take more until the batch is full or ``flush_s`` passed."""
        batch: list[Entry] = []
        try:
            first = self.queue.get(timeout=0.25)
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.flush_s
        item: Entry | None = first
        while True:
            if item is None:
                self.queue.task_done()  # the stop sentinel
            else:
                batch.append(item)
            if len(batch) >= self.batch_size:
                return batch
            left = deadline - time.monotonic()
            try:
                item = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                return batch

    def _write(self, batch: list[Entry]) -> None:
        try:
            rows = [row_values(e, self.thresholds) for e in batch]
        except Exception:  # a bug, never a reason to end the writer
            log.exception("audit rows could not be built; %d dropped", len(batch))
            self.metrics.audit_dropped.labels("error").inc(len(batch))
            return
        finally:
            self._release(sum(len(e.data) for e in batch))
        backoff = 0.05
        while True:
            t0 = time.perf_counter()
            try:
                written = write_rows(self.store, rows)
            except (SQLAlchemyError, StoreError) as exc:
                if not self.failing:
                    log.error("audit rows cannot be written (retrying): %s", exc)
                self.failing = True
                if time.monotonic() >= self._stop_at:
                    log.error("stopping: %d audit rows not written", len(rows))
                    self.metrics.audit_dropped.labels("error").inc(len(rows))
                    return
                time.sleep(min(backoff, max(self._stop_at - time.monotonic(), 0.0)))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            except Exception:
                log.exception("audit write failed; %d rows dropped", len(rows))
                self.metrics.audit_dropped.labels("error").inc(len(rows))
                return
            self.metrics.audit_write_seconds.observe(time.perf_counter() - t0)
            self.metrics.audit_rows.inc(written)
            if self.failing:
                log.warning("audit rows are written again")
                self.failing = False
            return

    def _retention(self) -> None:
        now = time.monotonic()
        if self.retention_days is None or now < self._next_retention:
            return
        self._next_retention = now + self.retention_every_s
        try:
            n = apply_retention(self.store, self.retention_days)
        except Exception:
            log.exception("audit retention failed")
            return
        if n:
            log.info("audit retention removed %d rows", n)
