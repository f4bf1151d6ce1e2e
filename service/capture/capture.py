"""The capture front: sampling decisions on the loop, the flag ring buffer, the writer."""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from service.capture import samplers
from service.capture.limits import LocalBuckets, RedisBuckets
from service.capture.spec import SamplerSpec
from service.capture.writer import Job, Quotas, Writer
from service.config import Settings
from service.frames import Frame
from service.observers import observe
from service.records import DetectionRecord
from service.registry import Registry
from service.store.store import Store
from service.thresholds import ServedThresholds

log = logging.getLogger(__name__)


class Capture:
    """Offers answered frames to the samplers; keeps the last frames for flagging."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Any,
        registry: Registry,
        redis_client: Any = None,
    ) -> None:
        self.settings, self.metrics, self.registry = settings, metrics, registry
        specs = list(settings.capture_samplers)
        self.rules = [s for s in specs if s.kind not in ("flagged", "disagreement")]
        self.flagged = [s for s in specs if s.kind == "flagged"]
        self.disagreement = [s for s in specs if s.kind == "disagreement"]
        shared = redis_client is not None
        self.local = None if shared else LocalBuckets(specs)
        remote = RedisBuckets(redis_client, settings.redis_prefix, specs) if shared else None
        quotas = Quotas(
            settings.capture_dataset_quota_bytes,
            settings.capture_dataset_quota_images,
            settings.capture_class_quota_bytes,
            settings.capture_class_quota_images,
            settings.capture_min_free_bytes,
        )
        self.writer = Writer(
            store,
            metrics,
            quotas,
            settings.capture_queue_size,
            remote,
            settings.capture_retention_days,
        )
        self.ring: OrderedDict[str, tuple[Frame, DetectionRecord, datetime]] = OrderedDict()
        self.ring_size = settings.capture_flag_buffer
        self.rand = samplers.default_rand()
        self.thresholds = ServedThresholds(settings, registry)

    def start(self) -> None:
        """Start the writer thread."""
        self.writer.start()

    def stop(self) -> None:
        """Write what is queued and stop."""
        self.writer.stop()

    def _model(self, record: DetectionRecord) -> tuple[dict[str, float], tuple[str, ...]]:
        return self.thresholds.of(record.model.name, record.model.version)

    def _submit(
        self,
        spec: SamplerSpec,
        frame: Frame,
        record: DetectionRecord,
        classes: tuple[str, ...],
        taken_at: datetime,
    ) -> bool:
        if self.local is not None and not self.local.take(spec.name):
            self.metrics.capture_dropped.labels(spec.name, "limit").inc()
            return False
        data = frame.data if frame.pixels is None else _encode_raw(frame)
        if data is None:
            self.metrics.capture_dropped.labels(spec.name, "invalid").inc()
            return False
        job = Job(spec.name, spec.dataset, data, record, classes, taken_at)
        return self.writer.submit(job)

    def observe(self, frame: Frame, record: DetectionRecord) -> None:
        """Called after the answer: remember the frame for flagging and let every rule
        sampler decide. Never raises (a capture problem is logged and counted)."""
        try:
            now = datetime.now(UTC)
            if self.flagged and self.ring_size:
                self.ring[record.frame_id] = (frame, record, now)
                if len(self.ring) > self.ring_size:
                    self.ring.popitem(last=False)
            if not self.rules:
                return
            thresholds, classes = self._model(record)
            for spec in self.rules:
                if samplers.keeps(spec, record, thresholds, self.rand):
                    self._submit(spec, frame, record, classes, now)
        except Exception:
            log.exception("capture failed (the answer was not affected)")

    def flag(self, frame_id: str) -> list[str]:
        """Capture a recent frame an operator or PLC flagged; returns the samplers that
        queued it (empty when none applies). :class:`KeyError` when the frame is no
        longer in the ring buffer."""
        frame, record, taken_at = self.ring[frame_id]
        _, classes = self._model(record)
        return [
            spec.name
            for spec in self.flagged
            if samplers.applies(spec, record)
            and self._submit(spec, frame, record, classes, taken_at)
        ]

    def offer_disagreement(self, frame: Frame, record: DetectionRecord) -> None:
        """The hook shadow serving calls when a shadow model disagrees with ``record``."""
        _, classes = self._model(record)
        now = datetime.now(UTC)
        for spec in self.disagreement:
            if samplers.applies(spec, record):
                self._submit(spec, frame, record, classes, now)


def _encode_raw(frame: Frame) -> bytes | None:
    """A raw camera buffer as PNG (the store keeps encoded images)."""
    import cv2

    from models.processing import raw_pixels

    assert frame.pixels is not None
    try:
        rgb = raw_pixels(frame.data, frame.pixels, frame.pixels.width * frame.pixels.height)
        ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
    except Exception:
        return None
    return bytes(buf) if ok else None


def install(settings: Settings, store: Store, ctx: Any) -> Capture | None:
    """Wrap ``ctx.backend`` so every answered frame is offered to capture; None (and
    nothing wrapped) when no sampler is configured. Limits are shared through Redis
    when ``queue=redis``."""
    if not settings.capture_samplers:
        return None
    client = None
    if settings.queue == "redis":
        import redis

        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=settings.redis_timeout_ms / 1000
        )
    capture = Capture(settings, store, ctx.metrics, ctx.registry, client)
    for spec in settings.capture_samplers:  # every sampler's series exists from the start:
        ctx.metrics.captured.labels(spec.name)  # rate() reads 0, not "no data"
    capture.start()
    observe(ctx, capture)
    return capture
