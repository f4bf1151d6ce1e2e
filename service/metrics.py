"""Prometheus metrics of one lineinspect process (prefix ``lineinspect_``).

Every metric lives in a :class:`Metrics` instance with its own ``CollectorRegistry``
created in the app's lifespan (no process-global registry), so tests and several
apps in one process never collide. Latencies are histograms so they aggregate across
replicas. Line and camera label values pass through :class:`LabelBounder`, so a
misbehaving client cannot explode cardinality.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.model_stats import ModelStats

OTHER = "other"
#: Longest line/camera label value kept (longer ones are cut).
MAX_LABEL_CHARS = 64

# Seconds; dense where a takt time lives (1-100 ms), sparse beyond.
LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


def clean_label(value: str) -> str:
    """A client-given label value made safe to export and display: control and format
    characters (bidi overrides and marks, zero-width characters) removed, at most
    :data:`MAX_LABEL_CHARS` characters."""
    if value.isprintable() and len(value) <= MAX_LABEL_CHARS and value.isascii():
        return value  # the common case, checked without a per-character loop
    kept = "".join(c for c in value if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    return kept[:MAX_LABEL_CHARS]


class LabelBounder:
    """Maps free-form label values onto a bounded set of clean values.

    With an explicit allow-list, anything outside it becomes ``other``. Without one,
    values are cleaned (:func:`clean_label`), the first ``max_values`` distinct ones
    are admitted and the rest become ``other``.
    """

    def __init__(self, allowed: Iterable[str] | None, max_values: int) -> None:
        self._allowed = frozenset(allowed) if allowed else None
        self._seen: set[str] = set()
        self._max = max_values

    def __call__(self, value: str | None) -> str:
        if not value:
            return "unknown"
        if self._allowed is not None:
            return value if value in self._allowed else OTHER
        if value in self._seen:
            return value
        value = clean_label(value)
        if not value:
            return "unknown"
        if value in self._seen:
            return value
        if len(self._seen) < self._max:
            self._seen.add(value)
            return value
        return OTHER


class Metrics:
    """All metrics exported by a lineinspect process."""

    def __init__(
        self,
        lines: Iterable[str] | None = None,
        cameras: Iterable[str] | None = None,
        max_label_values: int = 64,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The same measurements, cumulative per model version, for the v2 statistics API.
        self.model_stats = ModelStats()
        self.line_label = LabelBounder(lines, max_label_values)
        self.camera_label = LabelBounder(cameras, max_label_values)
        r = self.registry
        self.frames = Counter(
            "lineinspect_frames",
            "Frames inspected.",
            ["line", "camera", "model", "version", "verdict"],
            registry=r,
        )
        self.defects = Counter(
            "lineinspect_defects", "Defects detected.", ["line", "label"], registry=r
        )
        self.request_duration = Histogram(
            "lineinspect_request_duration_seconds",
            "End-to-end request duration.",
            ["protocol", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "lineinspect_queue_wait_seconds",
            "Time a frame waited before its batch ran.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "lineinspect_inference_duration_seconds",
            "Model run time of one batch.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "lineinspect_batch_size",
            "Frames per executed batch.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "lineinspect_queue_depth", "Frames waiting for a batch.", ["model"], registry=r
        )
        self.in_flight = Gauge(
            "lineinspect_in_flight_requests", "Requests being handled.", ["protocol"], registry=r
        )
        self.dropped = Counter(
            "lineinspect_dropped_frames", "Frames not inspected, by reason.", ["reason"], registry=r
        )
        self.errors = Counter(
            "lineinspect_errors",
            "Error answers by endpoint and status.",
            ["protocol", "endpoint", "status"],
            registry=r,
        )
        self.model_info = Gauge(
            "lineinspect_model_info",
            "Loaded model versions (1 = serving).",
            ["name", "version", "role", "alias"],
            registry=r,
        )
        self.model_swaps = Counter(
            "lineinspect_model_swaps",
            "Hot swaps of an alias to a new version.",
            ["name"],
            registry=r,
        )
        self.model_execution_provider = Gauge(
            "lineinspect_model_execution_provider",
            "Execution provider each loaded model version runs on (1); a CPU fallback of a "
            "GPU worker shows here.",
            ["model", "version", "provider"],
            registry=r,
        )
        self.ready = Gauge(
            "lineinspect_ready", "1 when all configured models are warm.", registry=r
        )
        # --- Redis queue (queue=redis; exported by API instances and workers alike,
        # so aggregate the gauges with max by (stream), never sum) ---
        self.queue_length = Gauge(
            "lineinspect_queue_length",
            "Frames in the Redis stream not yet answered.",
            ["stream"],
            registry=r,
        )
        self.queue_lag = Gauge(
            "lineinspect_queue_lag",
            "Frames in the stream not yet delivered to any worker.",
            ["stream", "group"],
            registry=r,
        )
        self.queue_pending = Gauge(
            "lineinspect_queue_pending",
            "Frames delivered to a worker, not yet acknowledged.",
            ["stream", "group"],
            registry=r,
        )
        self.queue_reclaimed = Counter(
            "lineinspect_queue_reclaimed_frames",
            "Pending frames reclaimed from an idle worker.",
            ["stream"],
            registry=r,
        )
        self.queue_duplicates = Counter(
            "lineinspect_queue_duplicate_frames",
            "Redelivered frames whose answer had already been delivered (not answered again).",
            ["stream"],
            registry=r,
        )
        self.queue_dead_letters = Counter(
            "lineinspect_queue_dead_letter_frames",
            "Frames moved to the dead-letter stream after too many deliveries (answered "
            "with an error).",
            ["stream"],
            registry=r,
        )
        self.redis_up = Gauge("lineinspect_redis_up", "1 while Redis answers.", registry=r)
        # --- capture (service/capture) ---
        self.captured = Counter(
            "lineinspect_captured_frames",
            "Frames captured into the data store.",
            ["sampler"],
            registry=r,
        )
        self.capture_dropped = Counter(
            "lineinspect_capture_dropped_frames",
            "Frames a sampler kept but capture dropped (limit, queue_full, quota_dataset, "
            "quota_class, duplicate, disk_full, invalid, error).",
            ["sampler", "reason"],
            registry=r,
        )
        self.store_bytes = Gauge(
            "lineinspect_store_bytes", "Bytes of images held by the data store.", registry=r
        )
        # --- promotion (service/promotion): every alias move in the history, counted by
        # every API replica (aggregate with max, not sum) ---
        self.promotions = Counter(
            "lineinspect_promotions",
            "Alias moves recorded in the promotion history, by reason.",
            ["name", "alias", "reason"],
            registry=r,
        )
        self.rollbacks = Counter(
            "lineinspect_rollbacks",
            "Rollbacks of production (reason manual or auto).",
            ["name", "reason"],
            registry=r,
        )

    def observe_frame(
        self,
        line: str | None,
        camera: str | None,
        model: str,
        version: int,
        verdict: str,
        labels: Iterable[str],
    ) -> None:
        """Count one inspected frame and its defects (label values bounded)."""
        line_v = self.line_label(line)
        self.frames.labels(line_v, self.camera_label(camera), model, str(version), verdict).inc()
        for label in labels:
            self.defects.labels(line_v, label).inc()

    def exposition(self) -> bytes:
        """The text exposition format for ``GET /metrics``."""
        return generate_latest(self.registry)
