"""The database schema (SQLAlchemy 2 declarative models). Alembic revisions in
``migrations/versions`` create exactly this; a test checks they agree.

Box convention everywhere (labels, predictions, records): the detection record's
``{"box": [x1, y1, x2, y2], "label": name}`` in original-image pixels, plus ``score``
for predictions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SOURCES = ("upload", "import", "capture", "label-studio")
STATES = ("unlabelled", "labelled", "ok", "rejected")
ORIGINS = ("manual", "prediction", "prediction-changed")
SPLITS = ("train", "val")


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Dataset(Base):
    """A named dataset with a fixed, ordered class list (class id = index)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    classes: Mapped[list[Any]] = mapped_column(JSON)
    val_fraction: Mapped[float] = mapped_column(Float)
    golden_frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Sample(Base):
    """One image of one dataset. ``split`` is a pure function of ``sha256``
    (service/store/splits.py) stored for querying; ``golden`` samples are never trained on."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("dataset_id", "sha256", name="uq_samples_dataset_sha256"),
        Index("ix_samples_dataset_state", "dataset_id", "state"),
        Index("ix_samples_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(32))
    original_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    line: Mapped[str | None] = mapped_column(String(128), nullable=True)
    camera: Mapped[str | None] = mapped_column(String(128), nullable=True)
    frame_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model_ref: Mapped[str | None] = mapped_column(String(256), nullable=True)
    prediction: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    sampler: Mapped[str | None] = mapped_column(String(64), nullable=True)
    capture_class: Mapped[str | None] = mapped_column(String(128), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="unlabelled")
    split: Mapped[str] = mapped_column(String(8))
    golden: Mapped[bool] = mapped_column(Boolean, default=False)
    label_version: Mapped[int] = mapped_column(Integer, default=0)
    pixels_deleted_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Label(Base):
    """One version of a sample's labels; the history is every row, the current one is
    ``Sample.label_version``. ``state`` is what this version makes of the sample."""

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("sample_id", "version", name="uq_labels_sample_version"),
        Index("ix_labels_external_ref", "external_ref"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    boxes: Mapped[list[Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(24))
    external_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Snapshot(Base):
    """An immutable manifest of a dataset at one moment, identified by its fingerprint."""

    __tablename__ = "snapshots"
    __table_args__ = (
        UniqueConstraint("dataset_id", "fingerprint", name="uq_snapshots_dataset_fingerprint"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    train_fingerprint: Mapped[str] = mapped_column(String(64))
    classes: Mapped[list[Any]] = mapped_column(JSON)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SnapshotItem(Base):
    """One sample of a snapshot: which label version, and its role (train, val, golden)."""

    __tablename__ = "snapshot_items"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"))
    role: Mapped[str] = mapped_column(String(8))
