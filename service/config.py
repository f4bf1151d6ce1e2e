"""The one settings class of lineinspect (pydantic-settings).

Sources, highest priority first: explicit keyword arguments (CLI flags), environment
variables ``LINEINSPECT_*``, the optional YAML file given with ``--config``, defaults.
Nothing is read at import time: :func:`load_settings` is called by the CLI / app factory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from models.processing import DEFAULT_IOU_THRESHOLD
from models.registry import BUNDLED_ROOT
from service.auth.tokens import TokenEntry
from service.capture.spec import SamplerSpec, default_samplers
from service.gate.spec import GateRules
from service.jobs.pipeline_spec import TriggerSpec
from service.promotion.spec import PromotionSpec


class ConfigError(ValueError):
    """The configuration is invalid; the message names each wrong setting and why."""


class Settings(BaseSettings):
    """Every setting of the service, workers and CLI. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="LINEINSPECT_", extra="forbid", validate_default=True
    )

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
    # --- data store ----------------------------------------------------------------
    # (service/store; docs/data.md)
    data_root: Path = Field(
        Path("var"),
        description="Root of the data store: image blobs, snapshots and (without "
        "database_url) the SQLite database. Relative paths resolve against the working directory.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the store's database (postgresql://user:pw@host/db "
        "uses psycopg 3); None = SQLite file lineinspect.db under data_root.",
    )
    data_val_fraction: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="Validation share of a new dataset (hash split, fixed "
        "when the dataset is created).",
    )
    data_golden_per_class: int = Field(
        10,
        ge=0,
        description="Golden images frozen per class from a dataset's first import "
        "without --golden (0 = none).",
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients reach this service on (Label Studio image URLs); "
        "None = http://<host>:<port>.",
    )
    label_studio_from_name: str = Field("label", description="Label Studio RectangleLabels name.")
    label_studio_to_name: str = Field("image", description="Label Studio Image name.")
    label_studio_webhook_secret: SecretStr | None = Field(
        None,
        description="If set, the Label Studio webhook needs header X-Lineinspect-Secret.",
    )
    capture_samplers: list[SamplerSpec] = Field(
        default_factory=default_samplers,
        description="Capture samplers (docs/data.md): each a name, kind (random, near_threshold, "
        "detections_count, classes, disagreement, flagged), its rule, dataset, models, lines and "
        "per_minute/per_hour/per_day limits. [] turns capture off.",
    )
    capture_queue_size: int = Field(
        256, ge=1, le=65536, description="Captures waiting for the writer; beyond, dropped."
    )
    capture_flag_buffer: int = Field(
        64, ge=0, le=4096, description="Recent frames kept for POST /v1/frames/{id}/flag."
    )
    capture_dataset_quota_bytes: int | None = Field(
        5 * 2**30, ge=0, description="Bytes of captured images per dataset; None = no bound."
    )
    capture_dataset_quota_images: int | None = Field(
        20_000, ge=0, description="Captured images per dataset; None = no bound."
    )
    capture_class_quota_bytes: int | None = Field(
        None, ge=0, description="Bytes of captured images per dataset and predicted class."
    )
    capture_class_quota_images: int | None = Field(
        None, ge=0, description="Captured images per dataset and predicted (majority) class."
    )
    capture_min_free_bytes: int = Field(
        2**30, ge=0, description="Captures stop (dropped: disk_full) below this free space."
    )
    capture_retention_days: float | None = Field(
        30,
        gt=0,
        description="Pixels of unlabelled captures older than this are deleted; "
        "labelled and golden samples are kept. None = keep all.",
    )
    # --- jobs and training worker (service/jobs; docs/learning.md) ----------------
    trainer: Literal["auto", "off"] = Field(
        "auto",
        description="auto: `serve` starts one training worker as a child process "
        "when torch is installed; off: never (run `lineinspect worker train` elsewhere).",
    )
    trainer_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="CPU threads of a training child (torch and OpenMP); 0 = half the "
        "usable cores, at least 1, leaving the rest to inspection.",
    )
    trainer_nice: int = Field(
        10, ge=0, le=19, description="Niceness of a training child (the worker itself runs at 0)."
    )
    trainer_lease_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Lease of a claimed job, renewed every trainer_poll_s; when it lapses "
        "(worker dead) another worker resumes the job from its last checkpoint.",
    )
    trainer_poll_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often a worker looks for jobs, renews its lease, reads progress "
        "and notices a cancel.",
    )
    trainer_stop_grace_s: float = Field(
        10.0, ge=0, le=300, description="Time a training child gets after SIGTERM before SIGKILL."
    )
    trainer_max_attempts: int = Field(
        3, ge=1, le=100, description="Lapsed leases after which a job fails instead of resuming."
    )
    trainer_metrics_port: int = Field(
        9101, ge=0, le=65535, description="Training worker /metrics, /healthz, /readyz port."
    )
    trainer_worker_id: str | None = Field(
        None, max_length=128, description="Training worker name; None = <hostname>-<pid>."
    )
    # --- audit (service/audit; docs/audit.md) ----------------------------------------
    audit: Literal["required", "best_effort", "off"] = Field(
        "best_effort",
        description="The verdict audit trail: a row per answered frame in the store's "
        "database. best_effort: a row that cannot be queued is dropped and counted; "
        "required: such a frame is answered 503 instead (queue full, or the database "
        "failing); off: no rows.",
    )
    audit_queue_size: int = Field(
        4096, ge=1, le=1_000_000, description="Audit rows waiting for the writer; beyond, dropped."
    )
    audit_queue_bytes: int = Field(
        256 * 2**20,
        ge=2**16,
        description="Image bytes the waiting rows may hold (each is hashed in the writer "
        "thread); beyond, dropped like a full queue.",
    )
    audit_batch_size: int = Field(
        256, ge=1, le=1000, description="Audit rows written per database statement, at most."
    )
    audit_flush_ms: float = Field(
        200,
        ge=1,
        le=60_000,
        description="Longest a queued audit row waits for its batch to fill before it is written.",
    )
    audit_retention_days: float | None = Field(
        90, gt=0, description="Audit rows older than this are deleted (hourly); None = keep all."
    )
    # --- ui (service/ui; docs/operator.md) -----------------------------------------
    grafana_url: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^https?://",
        description="The Grafana dashboard the operator page's Lines view links to "
        "(http(s) URL); None = no link.",
    )
    # --- pipeline (service/jobs/pipeline.py, triggers.py; docs/learning.md) ----------
    gate_rules: GateRules = Field(
        default_factory=lambda: GateRules.model_validate({}),
        description="Rules a pipeline's candidate (and `lineinspect gate`) must meet against "
        "production: mAP@.5 margin, largest rise of any class's escape rate, latency ratio "
        "at latency_batch (docs/gate.md).",
    )
    triggers: dict[str, TriggerSpec] = Field(
        default_factory=dict,
        description="Per lineage (registry model name): when the training worker submits a "
        "pipeline: {dataset, min_new_labels, min_per_class, cron, debounce_s, min_interval_s, "
        "pipeline: {parameters}}. Empty = pipelines only on request.",
    )
    # --- promotion (service/promotion; docs/learning.md) ---------------------------
    promotion: dict[str, PromotionSpec] = Field(
        default_factory=dict,
        description="Promotion policy per lineage (registry model name): {policy: "
        "manual|shadow|auto, shadow_min_frames, shadow_min_agreement, "
        "shadow_max_class_rate_delta}. A lineage not listed is manual.",
    )
    promotion_check_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="How often the API checks shadow criteria, reads production aliases "
        "for the rollback monitor and counts new history rows in the metrics.",
    )
    rollback_enabled: bool = Field(
        True, description="Move production back when a promoted version misbehaves on a line."
    )
    rollback_window_frames: int = Field(
        500,
        ge=1,
        le=1_000_000,
        description="Frames per line and version the fail rate is judged on: the previous "
        "version's last window (the baseline) against the promoted version's first.",
    )
    rollback_fail_rate_band: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Absolute band around the baseline fail rate; a promoted version whose "
        "fail rate on a line leaves it is rolled back.",
    )
    rollback_max_error_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of a promoted version's first window of requests that may fail "
        "with a server error before it is rolled back.",
    )
    # --- shadow ---
    # (service/shadow; docs/learning.md "Shadow serving")
    shadow_enabled: bool = Field(
        True,
        description="Run a lineage's shadow version on a fraction of live frames after "
        "the production answer (only lineages that have the shadow alias).",
    )
    shadow_fraction: float = Field(
        0.1, ge=0, le=1, description="Share of answered production frames shadowed."
    )
    shadow_alias: str = Field(
        "shadow", min_length=1, description="The alias naming a lineage's shadow version."
    )
    shadow_fallback_candidate: bool = Field(
        True,
        description="A lineage without the shadow alias shadows its `candidate` alias.",
    )
    shadow_queue_size: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Frames waiting for shadow inference; beyond it (or while production "
        "has a full batch waiting) shadow work is dropped and counted.",
    )

    @field_validator("models")
    @classmethod
    def _models_not_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one model reference is needed")
        return v

    @field_validator("class_thresholds")
    @classmethod
    def _thresholds_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: t for k, t in v.items() if not 0 <= t <= 1}
        if bad:
            raise ValueError(f"thresholds must be within [0, 1]: {bad}")
        return v

    @field_validator("admin_token")
    @classmethod
    def _no_admin_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            raise ValueError(
                "admin_token is not supported, scoped tokens protect every route: run "
                "`lineinspect token new --scopes admin` and put the entry it prints under "
                "`tokens` (docs/operations.md, Security)"
            )
        return v

    @model_validator(mode="after")
    def _registry_exists(self) -> Settings:
        if not self.registry_root.is_dir():
            raise ValueError(f"registry_root {self.registry_root} is not a directory")
        return self

    @model_validator(mode="after")
    def _grpc_consistent(self) -> Settings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("grpc_tls_cert and grpc_tls_key must be set together")
        if self.grpc_tls_client_ca is not None and self.grpc_tls_cert is None:
            raise ValueError("grpc_tls_client_ca needs grpc_tls_cert and grpc_tls_key (TLS)")
        for path in (self.grpc_tls_cert, self.grpc_tls_key, self.grpc_tls_client_ca):
            if path is not None and not path.is_file():
                raise ValueError(f"gRPC TLS file {path} does not exist")
        if self.grpc_stream_buffer < self.grpc_stream_in_flight:
            raise ValueError("grpc_stream_buffer must be >= grpc_stream_in_flight")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No dotenv or secret files: init kwargs (flags + YAML, see load_settings) and env.
        return init_settings, env_settings


def _format_errors(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(settings)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build validated settings from defaults, an optional YAML file, env and overrides.

    Raises :class:`ConfigError` naming every wrong setting and why.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping of settings")
        file_values = loaded
    explicit = {k: v for k, v in overrides.items() if v is not None}
    # Explicit flags are init kwargs (highest). File values also travel as init kwargs,
    # so drop those an environment variable sets: env outranks the file.
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    env_keys = {k[len(prefix) :].lower() for k in os.environ if k.upper().startswith(prefix)}
    values = {k: v for k, v in file_values.items() if k.lower() not in env_keys}
    values.update(explicit)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from exc


def child_environment(overrides: dict[str, str]) -> dict[str, str]:
    """The environment for a child process (a training worker or run): this process's
    own, with ``overrides`` on top. The one place outside pydantic-settings that touches
    ``os.environ``."""
    return {**os.environ, **overrides}
