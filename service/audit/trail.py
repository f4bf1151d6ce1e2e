"""Writing the audit trail: insert-or-ignore batches, and retention.

``frame_id`` is unique, and a batch is one ``INSERT … ON CONFLICT (frame_id) DO
NOTHING`` (the same statement on SQLite and PostgreSQL), so a frame answered twice (a
client's retry, a redelivery in the Redis topology, two API instances) keeps its first
row and the second write is a no-op, not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from service.audit.schema import AuditRow
from service.store.store import Store

#: Rows deleted per statement by retention (short transactions, no long lock).
RETENTION_CHUNK = 5000


def write_rows(store: Store, rows: Sequence[dict[str, Any]]) -> int:
    """Insert ``rows``, ignoring frame ids already audited; returns how many were new."""
    if not rows:
        return 0
    dialect = store.engine.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = AuditRow.metadata.tables[AuditRow.__tablename__]
    stmt = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["frame_id"])
        .returning(table.c.id)  # rowcount is -1 on psycopg here; this is not
    )
    with store.transaction() as s:
        # executemany: SQLAlchemy batches it into multi-row statements ("insertmanyvalues")
        # compiled once, several times faster than one .values(rows) statement per batch
        return len(s.execute(stmt, list(rows)).all())


def apply_retention(store: Store, days: float, now: datetime | None = None) -> int:
    """Delete the rows older than ``days``; returns how many went."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    removed = 0
    while True:
        with store.transaction() as s:
            ids = select(AuditRow.id).where(AuditRow.time < cutoff).limit(RETENTION_CHUNK)
            n = int(s.execute(delete(AuditRow).where(AuditRow.id.in_(ids))).rowcount or 0)  # type: ignore[attr-defined]
        removed += n
        if n < RETENTION_CHUNK:
            return removed
