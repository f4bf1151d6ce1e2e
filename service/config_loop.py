"""The learning-loop settings of :class:`~service.config.Settings`: the data store and
capture, training jobs and the worker, audit, the operator page, pipelines, promotion and
shadow serving. A mixin of fields only: validation and loading live in
service/config.py."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from service.capture.spec import SamplerSpec, default_samplers
from service.gate.spec import GateRules
from service.jobs.pipeline_spec import TriggerSpec
from service.promotion.spec import PromotionSpec


class LoopSettings(BaseModel):
    """The fields of the learning loop (see docs/configuration.md)."""

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
