"""The ``audit_rows`` table: one compact row per answered frame (SQLAlchemy 2).

``frame_id`` is unique: a retried or redelivered frame is written once (insert or
ignore). Times are stored as naive UTC and read back aware (:class:`UTCDateTime`), the
same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.jobs.schema import UTCDateTime
from service.store.schema import Base

#: Column widths; longer client-given values are cut to them before they are written.
ID_CHARS, LABEL_CHARS, NAME_CHARS = 128, 128, 128


class AuditRow(Base):
    """What answered one frame, with which thresholds, and what it answered."""

    __tablename__ = "audit_rows"
    __table_args__ = (
        UniqueConstraint("frame_id", name="uq_audit_rows_frame_id"),
        Index("ix_audit_time", "time"),
        Index("ix_audit_line_time", "line", "time"),
        Index("ix_audit_model_time", "model_name", "model_version", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    frame_id: Mapped[str] = mapped_column(String(ID_CHARS))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    edge: Mapped[str | None] = mapped_column(String(16), nullable=True)
    line: Mapped[str | None] = mapped_column(String(LABEL_CHARS), nullable=True)
    camera: Mapped[str | None] = mapped_column(String(LABEL_CHARS), nullable=True)
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_name: Mapped[str] = mapped_column(String(NAME_CHARS))
    model_version: Mapped[int] = mapped_column(Integer)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    verdict: Mapped[str] = mapped_column(String(8))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_score: Mapped[float | None] = mapped_column(Float, nullable=True)
