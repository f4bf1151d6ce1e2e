"""The audit observer: every answered frame, on every edge, queued as one row.

:meth:`Audit.observe` runs on the event loop right after the record exists: it takes
the time and the edge and queues a reference to the frame's bytes and record (a few
microseconds); the writer thread does the rest (:mod:`service.audit.writer`). With
``audit: required`` a frame that cannot be audited (queue full, or the database is
known to be failing) is refused with :class:`~service.errors.AuditUnavailable` (503,
gRPC UNAVAILABLE) instead of answered; with ``best_effort`` it is answered and the
missing row counted in ``lineinspect_audit_dropped_total{reason}``.
"""

from __future__ import annotations

import time
from typing import Any

from service.audit.rows import Entry
from service.audit.writer import DROP_REASONS, AuditWriter
from service.config import Settings
from service.errors import AuditUnavailable
from service.frames import Frame
from service.observers import EDGE, observe
from service.records import DetectionRecord
from service.registry import Registry
from service.store.store import Store
from service.thresholds import ServedThresholds


class Audit:
    """Queues a row per answered frame; refuses the answer when required and impossible."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Any,
        registry: Registry,
        retention_every_s: float = 3600.0,
    ) -> None:
        self.required = settings.audit == "required"
        self.metrics = metrics
        self.writer = AuditWriter(
            store,
            metrics,
            ServedThresholds(settings, registry),
            settings.audit_queue_size,
            settings.audit_batch_size,
            settings.audit_flush_ms / 1000,
            settings.audit_queue_bytes,
            settings.audit_retention_days,
            retention_every_s,
        )

    def start(self) -> None:
        """Start the writer thread."""
        self.writer.start()

    def stop(self) -> None:
        """Write what is queued and stop."""
        self.writer.stop()

    def observe(self, frame: Frame, record: DetectionRecord) -> None:
        """Queue the row of this answered frame (never blocks)."""
        if self.required and self.writer.failing:
            self.metrics.audit_dropped.labels("db_failing").inc()
            raise AuditUnavailable(
                "the audit trail's database is failing and audit is required; retry later"
            )
        queued = self.writer.submit(Entry(time.time(), frame.data, record, EDGE.get()))
        if not queued and self.required:
            raise AuditUnavailable("the audit queue is full and audit is required; retry later")


def install(settings: Settings, store: Store, ctx: Any) -> Audit | None:
    """Wrap ``ctx.backend`` so every answered frame is audited; None (nothing wrapped)
    with ``audit: off``. Install it before the other observers, so a frame it refuses is
    not captured or shadowed either."""
    if settings.audit == "off":
        return None
    for reason in DROP_REASONS:  # every series exists from the start: rate() reads 0
        ctx.metrics.audit_dropped.labels(reason)
    audit = Audit(settings, store, ctx.metrics, ctx.registry)
    audit.start()
    observe(ctx, audit)
    return audit
