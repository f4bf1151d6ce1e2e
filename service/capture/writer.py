"""The capture writer: one thread draining a bounded queue into the data store.

Each capture is checked against the shared limits (Redis), the disk, dedupe and the
dataset/class quotas, then taken in as an unlabelled sample that keeps the answered
detection record. Anything that stops it drops the capture and counts the reason.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from service.capture.limits import RedisBuckets
from service.errors import Conflict, LineInspectError
from service.store import datasets, intake, samples
from service.store.blobs import sha256_of
from service.store.schema import Sample
from service.store.splits import majority_label
from service.store.store import Store

log = logging.getLogger(__name__)

#: How often the writer applies the retention rule.
RETENTION_PERIOD_S = 3600.0


@dataclass
class Quotas:
    """Storage bounds of captures: per dataset and per (dataset, class); None = none."""

    dataset_bytes: int | None = None
    dataset_images: int | None = None
    class_bytes: int | None = None
    class_images: int | None = None
    min_free_bytes: int = 0


@dataclass
class Job:
    """One capture waiting to be written."""

    sampler: str
    dataset: str
    data: bytes
    record: Any  # DetectionRecord; dumped in the writer thread, off the loop
    classes: tuple[str, ...]
    taken_at: datetime


class Writer:
    """Bounded queue + writer thread. :meth:`submit` never blocks."""

    def __init__(
        self,
        store: Store,
        metrics: Any,
        quotas: Quotas,
        size: int,
        shared_limits: RedisBuckets | None = None,
        retention_days: float | None = None,
    ) -> None:
        self.store, self.metrics, self.quotas = store, metrics, quotas
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=size)
        self.shared_limits = shared_limits
        self.thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self.bytes_total = 0
        self.retention_days = retention_days
        self._next_retention = 0.0

    def start(self) -> None:
        """Start the thread (after counting what the store holds)."""
        with self.store.transaction() as s:
            held = s.scalar(
                select(func.coalesce(func.sum(Sample.size_bytes), 0)).where(
                    Sample.pixels_deleted_at.is_(None)
                )
            )
        self.bytes_total = int(held or 0)
        self.metrics.store_bytes.set(self.bytes_total)
        self.thread.start()

    def submit(self, job: Job) -> bool:
        """Queue a capture; False (dropped, counted) when the queue is full."""
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            self.metrics.capture_dropped.labels(job.sampler, "queue_full").inc()
            return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued capture is handled (tests, shutdown)."""
        end = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)

    def _retention(self) -> None:
        now = time.monotonic()
        if self.retention_days is None or now < self._next_retention:
            return
        self._next_retention = now + RETENTION_PERIOD_S
        try:
            n = apply_retention(self.store, self.retention_days)
        except Exception:
            log.exception("capture retention failed")
            return
        if n:
            log.info("retention removed the pixels of %d unlabelled captures", n)

    def _run(self) -> None:
        while True:
            self._retention()
            try:
                job = self.queue.get(timeout=RETENTION_PERIOD_S)
            except queue.Empty:
                continue
            try:
                if job is None:
                    return
                reason = self._write(job)
                if reason is None:
                    self.metrics.captured.labels(job.sampler).inc()
                else:
                    self.metrics.capture_dropped.labels(job.sampler, reason).inc()
            except Exception:  # never let one capture end the writer
                log.exception("capture of sampler %s failed", job.sampler if job else "?")
                if job is not None:
                    self.metrics.capture_dropped.labels(job.sampler, "error").inc()
            finally:
                self.queue.task_done()

    def _write(self, job: Job) -> str | None:
        """Write one capture; returns the drop reason, or None when stored."""
        if self.shared_limits is not None and not self.shared_limits.take(job.sampler):
            return "limit"
        q = self.quotas
        if q.min_free_bytes and shutil.disk_usage(
            self.store.data_root
        ).free < q.min_free_bytes + len(job.data):
            return "disk_full"
        record = job.record.model_dump(mode="json")
        prediction = record["detections"]
        cls = majority_label(prediction)
        item = intake.Item(
            data=job.data,
            source="capture",
            line=record.get("line"),
            camera=record.get("camera"),
            frame_id=record.get("frame_id"),
            taken_at=job.taken_at,
            prediction=prediction,
            record=record,
            sampler=job.sampler,
            model_ref=f"{record['model']['name']}:{record['model']['version']}",
        )
        try:
            with self.store.transaction() as s:
                ds, _ = datasets.get_or_create(
                    s, job.dataset, list(job.classes), self.store.val_fraction
                )
                datasets.widen(ds, list(job.classes), allow=True)
                if samples.find(s, ds, sha256_of(job.data)) is not None:
                    return "duplicate"
                over = self._over_quota(s, ds.id, cls, len(job.data))
                if over is not None:
                    return over
                sample, _ = intake.take(s, self.store.blobs, ds, item, self.store.max_pixels)
                sample.capture_class = cls
        except OSError as exc:
            log.warning("capture not written: %s", exc)
            return "disk_full"
        except Conflict:  # another instance stored the same image at the same moment
            return "duplicate"
        except LineInspectError:
            return "invalid"
        self.bytes_total += len(job.data)
        self.metrics.store_bytes.set(self.bytes_total)
        return None

    def _over_quota(self, s: Any, ds_id: int, cls: str | None, size: int) -> str | None:
        q = self.quotas
        if q.dataset_images is not None or q.dataset_bytes is not None:
            n, used = s.execute(
                select(func.count(), func.coalesce(func.sum(Sample.size_bytes), 0)).where(
                    Sample.dataset_id == ds_id,
                    Sample.source == "capture",
                    Sample.pixels_deleted_at.is_(None),
                )
            ).one()
            if q.dataset_images is not None and n + 1 > q.dataset_images:
                return "quota_dataset"
            if q.dataset_bytes is not None and used + size > q.dataset_bytes:
                return "quota_dataset"
        if q.class_images is not None or q.class_bytes is not None:
            n, used = s.execute(
                select(func.count(), func.coalesce(func.sum(Sample.size_bytes), 0)).where(
                    Sample.dataset_id == ds_id,
                    Sample.source == "capture",
                    Sample.capture_class.is_(None) if cls is None else Sample.capture_class == cls,
                    Sample.pixels_deleted_at.is_(None),
                )
            ).one()
            if q.class_images is not None and n + 1 > q.class_images:
                return "quota_class"
            if q.class_bytes is not None and used + size > q.class_bytes:
                return "quota_class"
        return None


def apply_retention(store: Store, days: float, now: datetime | None = None) -> int:
    """Delete the pixels of unlabelled, non-golden captures older than ``days``; labelled
    and golden samples and every label are kept. Returns how many samples lost pixels."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    freed = 0
    with store.transaction() as s:
        rows = list(
            s.scalars(
                select(Sample).where(
                    Sample.source == "capture",
                    Sample.state == "unlabelled",
                    Sample.golden.is_(False),
                    Sample.pixels_deleted_at.is_(None),
                    Sample.taken_at < cutoff,
                )
            )
        )
        stamp = datetime.now(UTC)
        for smp in rows:
            smp.pixels_deleted_at = stamp
        shas = {r.sha256 for r in rows}
        still_used = (
            set(
                s.scalars(
                    select(Sample.sha256).where(
                        Sample.sha256.in_(shas), Sample.pixels_deleted_at.is_(None)
                    )
                )
            )
            if shas
            else set()
        )
    for sha in shas - still_used:
        store.blobs.delete(sha)
    freed = len(rows)
    return freed
