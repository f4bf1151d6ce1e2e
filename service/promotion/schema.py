"""The ``promotion_history`` table: one row per alias move, appended after the move.

The registry's ``aliases.json`` stays the truth about where an alias points; this table
records who or what moved it, from which version to which, and why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.jobs.schema import UTCDateTime, utcnow
from service.store.schema import Base

#: Why an alias moved: a gate decision (policy), a person (REST/CLI), a rollback (a person
#: or the monitor), a shadow that met its criteria, or a registration with ``--alias``.
REASONS = ("gate", "manual", "rollback", "auto_rollback", "shadow", "register")
#: The longest reason the table holds.
REASON_MAX = 32


class PromotionEvent(Base):
    """One alias move."""

    __tablename__ = "promotion_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(128))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(REASON_MAX))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_promotion_history_name_id", "name", "id"),)

    def to_dict(self) -> dict[str, Any]:
        """The REST item (``GET /v1/models/{name}/history``)."""
        return {
            "id": self.id,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "details": self.details,
            "created_at": self.created_at.isoformat(),
        }
