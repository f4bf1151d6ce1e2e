"""The ``jobs`` table (SQLAlchemy 2) and the job vocabulary: kinds and states.

A row is the whole truth about a job: what to run (kind, parameters, snapshot, base
refs), who runs it (worker, lease), how far it is (progress), and what came of it
(result, error, log). ``parent_id`` links the steps of a ``pipeline`` to it, each step's
JSON result being what the next one reads.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from service.store.schema import Base


class JobKind(enum.StrEnum):
    """What a job does. ``train``, ``distil``, ``prune``, ``evaluate`` and ``export`` run
    the training CLI in a child process; ``pipeline`` chains steps, each a child job:
    those kinds and the torch-free ``snapshot``, ``gate``, ``register`` and ``policy``,
    which the worker runs itself and only as steps of a pipeline."""

    TRAIN = "train"
    DISTIL = "distil"
    PRUNE = "prune"
    EVALUATE = "evaluate"
    EXPORT = "export"
    PIPELINE = "pipeline"
    SNAPSHOT = "snapshot"
    GATE = "gate"
    REGISTER = "register"
    POLICY = "policy"


class JobState(enum.StrEnum):
    """Life cycle: queued → running → succeeded | failed | cancelled (running → queued
    when a worker stops gracefully; a running job whose lease lapsed is claimable)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the job is over."""
        return self in TERMINAL


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
#: States that hold an idempotency key: a failed or cancelled job can be asked again.
LIVE = (JobState.QUEUED.value, JobState.RUNNING.value, JobState.SUCCEEDED.value)
_LIVE_SQL = "state IN ({})".format(", ".join(f"'{s}'" for s in LIVE))


def utcnow() -> datetime:
    """Aware UTC now (leases and timestamps are compared in UTC)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC and read back aware, the same on SQLite (which
    keeps no zone) and PostgreSQL, so lease comparisons never mix zones."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use service.jobs.schema.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Job(Base):
    """One job."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    snapshot: Mapped[str | None] = mapped_column(String(128), nullable=True)
    base_refs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_dir: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_parent", "parent_id"),
        # One live job per key: asking twice returns it; a failed or cancelled one may be
        # asked again (a partial unique index, the same on SQLite and PostgreSQL).
        Index(
            "ux_jobs_live_key",
            "idempotency_key",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
    )
