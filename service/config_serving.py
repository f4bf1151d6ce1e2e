"""The serving settings of :class:`~service.config.Settings`: network, gRPC, models,
post-processing, batching, the Redis queue, input and connection limits, security and
execution providers. A mixin of fields only: validation and loading live in
service/config.py."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from models.processing import DEFAULT_IOU_THRESHOLD
from models.registry import BUNDLED_ROOT
from service.auth.tokens import TokenEntry


class ServingSettings(BaseModel):
    """The fields of the inference path (see docs/configuration.md)."""

    # --- network -------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="REST bind address.")
    port: int = Field(8000, ge=0, le=65535, description="REST port (0 = ephemeral).")
    grpc_port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 disables gRPC.")
    # --- gRPC ----------------------------------------------------------------------
    grpc_host: str | None = Field(None, description="gRPC bind address; None = the REST host.")
    grpc_max_message_bytes: int = Field(
        64 * 2**20,
        ge=4096,
        le=2**31 - 1,
        description="Largest gRPC message received or sent (default fits 20-megapixel frames).",
    )
    grpc_stream_in_flight: int = Field(
        8, ge=1, le=256, description="Frames of one stream being inspected at once."
    )
    grpc_stream_buffer: int = Field(
        64,
        ge=1,
        le=4096,
        description="Frames of one stream read but not yet answered; reading pauses at this bound.",
    )
    grpc_tls_cert: Path | None = Field(None, description="PEM server certificate (enables TLS).")
    grpc_tls_key: Path | None = Field(None, description="PEM private key of grpc_tls_cert.")
    grpc_tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate it signed."
    )
    grpc_shutdown_grace_s: float = Field(
        10.0, ge=0, le=300, description="On shutdown, time in-flight gRPC calls get to finish."
    )
    grpc_stream_window_bytes: int | None = Field(
        None,
        ge=65_535,
        le=2**31 - 1,
        description="Fixed HTTP/2 receive window per stream (disables window auto-tuning); caps "
        "how many frames a flooding camera queues in transport. None = gRPC's default.",
    )
    # --- models --------------------------------------------------------------------
    registry_root: Path = Field(BUNDLED_ROOT, description="Model registry directory.")
    models: list[str] = Field(
        default_factory=lambda: ["neu-det-student"],
        description="Model references loaded and warmed at start-up; the first is the default.",
    )
    registry_poll_s: float = Field(
        1.0, gt=0, description="How often alias files on disk are checked for hot swaps."
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="ONNX Runtime providers, preferred first; unavailable ones are skipped.",
    )
    intra_op_threads: int = Field(
        0,
        ge=0,
        description="ORT intra-op threads per session; 0 = auto: the usable cores divided "
        "among the inference threads, so overlapping batches never oversubscribe the cores.",
    )
    inter_op_threads: int = Field(1, ge=0, description="ORT inter-op threads.")
    ort_spinning: bool = Field(
        False,
        description="Let idle ORT threads spin. Off by default: on few cores the spinning "
        "steals CPU from HTTP handling and decoding (see docs/benchmarks.md).",
    )
    warmup_runs: int = Field(3, ge=1, description="Warm-up inferences before a model is ready.")
    # --- post-processing -----------------------------------------------------------
    score_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Default per-class score threshold; unset = the model card's "
        "class_thresholds (set by `lineinspect calibrate`), else its "
        "recommended_score_threshold (F1-optimal on its validation data), else 0.25.",
    )
    class_thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-class score thresholds overriding the default."
    )
    iou_threshold: float = Field(
        DEFAULT_IOU_THRESHOLD,
        gt=0,
        le=1,
        description="NMS IoU threshold (evaluation uses the same default).",
    )
    max_detections: int = Field(100, ge=1, description="Detections kept per frame.")
    fail_classes: list[str] | None = Field(
        None, description="Classes that fail a part; None = every class."
    )
    # --- batching and backpressure -------------------------------------------------
    queue: Literal["inprocess", "redis"] = Field("inprocess", description="Frame queue backend.")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL for queue=redis.")
    max_batch: int = Field(8, ge=1, le=256, description="Largest batch run at once.")
    max_delay_ms: float = Field(
        2.0, ge=0, le=1000, description="Longest wait for a batch to fill after its first frame."
    )
    queue_size: int = Field(256, ge=1, description="Frames waiting per model before 429.")
    default_deadline_ms: float = Field(
        2000, gt=0, description="Deadline of a request that sets none."
    )
    inference_threads: int = Field(
        2,
        ge=1,
        le=16,
        description="Threads running batches per model: two overlap one batch's "
        "post-processing with the next batch's inference (docs/benchmarks.md).",
    )
    decode_threads: int = Field(2, ge=1, le=64, description="Threads decoding images.")
    # --- Redis queue ---------------------------------------------------------------
    # (queue=redis; design in service/queue/__init__.py and docs/operations.md)
    redis_prefix: str = Field(
        "lineinspect",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:{}-]+$",
        description="Key prefix: <prefix>:frames, :results, :replies:<instance>, :done:<id>. "
        "One prefix = one shard (e.g. one per line).",
    )
    redis_group: str = Field("inference", min_length=1, description="Consumer group of workers.")
    redis_stream_maxlen: int = Field(
        1024, ge=1, description="Unanswered frames in the stream before new ones get 429."
    )
    redis_results_maxlen: int = Field(
        100_000, ge=1, description="Records kept in the results stream (audit trail)."
    )
    redis_reply_maxlen: int = Field(
        10_000, ge=16, description="Approximate bound of each API instance's reply stream."
    )
    redis_timeout_ms: float = Field(
        250, gt=0, le=30_000, description="Socket connect/read timeout: how fast Redis down fails."
    )
    redis_health_ms: float = Field(
        500, gt=0, le=60_000, description="Redis health probe period (readiness, recovery)."
    )
    redis_block_ms: int = Field(
        1000, ge=1, le=60_000, description="Longest blocking read of an idle worker or listener."
    )
    redis_reclaim_idle_ms: int = Field(
        5000, ge=10, description="Pending frames idle this long are reclaimed from their worker."
    )
    redis_dedupe_ttl_s: float = Field(
        600, gt=0, description="How long a frame's 'answered' marker blocks a second answer."
    )
    redis_stats_interval_s: float = Field(
        1.0, gt=0, description="How often queue length, lag and pending are exported."
    )
    worker_metrics_port: int = Field(
        9100, ge=0, le=65535, description="Worker /metrics, /healthz, /readyz port (0 = ephemeral)."
    )
    worker_consumer: str | None = Field(
        None, max_length=128, description="Worker consumer name; None = <hostname>-<pid>."
    )
    worker_prefetch: int = Field(
        0, ge=0, le=4096, description="Frames a worker holds at once; 0 = 2 * max_batch * threads."
    )
    # --- input limits --------------------------------------------------------------
    max_body_bytes: int = Field(32 * 2**20, ge=1024, description="Largest accepted request body.")
    max_pixels: int = Field(
        50_000_000, ge=1, description="Largest accepted image (width*height): bomb guard."
    )
    require_image_digest: bool = Field(
        False,
        description="Refuse (400 digest_required) every frame that comes without the SHA-256 "
        "of its bytes (REST Content-Digest, gRPC image_sha256, KServe image_sha256 "
        "parameter), so no frame changed on the way is ever inspected. Off: a digest sent "
        "is still checked (docs/operations.md, Security).",
    )
    # --- metrics labels --------------------------------------------------------------
    lines: list[str] | None = Field(
        None, description="Allowed line label values; others are counted as 'other'."
    )
    cameras: list[str] | None = Field(None, description="Allowed camera label values.")
    max_label_values: int = Field(64, ge=1, description="Cap on distinct line/camera values.")
    # --- security and logging ------------------------------------------------------
    admin_token: SecretStr | None = Field(
        None,
        description="Not supported: start-up fails when it is set; use `tokens` (an "
        "entry with the admin scope).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # --- deploy (execution providers) ---------------------------------------------
    strict_providers: bool = Field(
        False,
        description="Refuse to start (or to load a new version) when a model does not get "
        "every execution provider in `providers`; off = log a WARNING and serve on the "
        "fallback. Either way the provider shows in /readyz and "
        "lineinspect_model_execution_provider.",
    )
    # --- queue liveness and access control ---------------------------------------
    # (Redis liveness: service/queue/liveness.py; tokens: service/auth/)
    redis_heartbeat_ttl_ms: int = Field(
        600,
        ge=50,
        le=60_000,
        description="Lifetime of a worker's heartbeat key (refreshed every quarter of it); "
        "the frames of a worker whose heartbeat lapsed are claimed by the others at once.",
    )
    redis_dead_letter_after: int = Field(
        3,
        ge=1,
        le=100,
        description="Deliveries after which a frame whose workers all died is moved to "
        "<prefix>:dead and answered with an error (a poison frame) instead of redelivered.",
    )
    redis_dead_letter_maxlen: int = Field(
        1000, ge=1, description="Frames kept in the dead-letter stream <prefix>:dead."
    )
    tokens: list[TokenEntry] = Field(
        default_factory=list,
        description="Access tokens: entries {name, sha256, scopes} (scopes: infer, label, admin, "
        "read, metrics), made by `lineinspect token new`. Empty = every route and RPC is open "
        "(one warning at start-up); else each needs 'Authorization: Bearer <token>' with its "
        "scope, except health and readiness (docs/operations.md, Security).",
    )
    grpc_reflection: bool = Field(
        True, description="Offer gRPC server reflection (needs the read scope when tokens are set)."
    )
    # --- HTTP connection limits ----------------------------------------------------
    http_max_header_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=2**24,
        description="Largest request line plus headers; larger answers 431 and closes.",
    )
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Time from connect (or a request's first byte) to its last header.",
    )
    http_body_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Longest wait for the next piece of a request body."
    )
