"""Reading the audit trail: filtered pages, one frame, and the per-line summary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, cast, func, select, true
from sqlalchemy.orm import Session

from service.audit.schema import AuditRow
from service.errors import InvalidInput

#: Top classes listed per line by :func:`lines_summary`.
TOP_CLASSES = 5


@dataclass(frozen=True)
class Filters:
    """What a query keeps: each set field must match (``model``: ``name`` or
    ``name:version``; ``start`` inclusive, ``end`` exclusive)."""

    line: str | None = None
    camera: str | None = None
    verdict: str | None = None
    model: str | None = None
    start: datetime | None = None
    end: datetime | None = None


def utc(value: datetime) -> datetime:
    """``value`` as aware UTC (a naive time is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-12-06T12:00:00Z``; no zone = UTC) as aware UTC;
    :class:`InvalidInput` for anything else (a bare number is not taken as epoch)."""
    try:
        return utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"not an ISO 8601 time: {text[:64]!r}") from exc


def _where(f: Filters) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.line is not None:
        out.append(AuditRow.line == f.line)
    if f.camera is not None:
        out.append(AuditRow.camera == f.camera)
    if f.verdict is not None:
        out.append(AuditRow.verdict == f.verdict)
    if f.model is not None:
        name, sep, version = f.model.partition(":")
        out.append(AuditRow.model_name == name)
        if sep:
            if not version.isdigit():
                raise InvalidInput(f"model {f.model!r}: give name or name:version")
            out.append(AuditRow.model_version == int(version))
    if f.start is not None:
        out.append(AuditRow.time >= utc(f.start))
    if f.end is not None:
        out.append(AuditRow.time < utc(f.end))
    return out


def page(s: Session, f: Filters, offset: int, limit: int) -> tuple[int, list[AuditRow]]:
    """(matching rows, the ``limit`` rows from ``offset``), newest first."""
    where = _where(f)
    total = s.scalar(select(func.count()).select_from(AuditRow).where(*where)) or 0
    rows = s.scalars(
        select(AuditRow)
        .where(*where)
        .order_by(AuditRow.time.desc(), AuditRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return int(total), list(rows)


def every(s: Session, f: Filters, chunk: int = 1000) -> Iterator[AuditRow]:
    """Every matching row, newest first, read ``chunk`` rows at a time (exports)."""
    where = _where(f)
    last: tuple[datetime, int] | None = None
    while True:
        stmt = select(AuditRow).where(*where)
        if last is not None:  # keyset paging: stable while rows are being added
            t, i = last
            stmt = stmt.where((AuditRow.time < t) | ((AuditRow.time == t) & (AuditRow.id < i)))
        rows = list(s.scalars(stmt.order_by(AuditRow.time.desc(), AuditRow.id.desc()).limit(chunk)))
        yield from rows
        if len(rows) < chunk:
            return
        last = (rows[-1].time, rows[-1].id)


def one(s: Session, frame_id: str) -> AuditRow | None:
    """The row of ``frame_id``, if it was audited."""
    return s.scalar(select(AuditRow).where(AuditRow.frame_id == frame_id))


def lines_summary(s: Session, window_s: float, now: datetime | None = None) -> dict[str, Any]:
    """Per line over the last ``window_s``: frames, frames per minute (over the whole
    window), fail rate and the most detected classes (detections per class)."""
    end = now or datetime.now(UTC)
    window = (AuditRow.time >= end - timedelta(seconds=window_s), AuditRow.time <= end)
    fails = func.sum(case((AuditRow.verdict == "fail", 1), else_=0))
    per_line = s.execute(
        select(AuditRow.line, func.count(), fails).where(*window).group_by(AuditRow.line)
    ).all()
    if s.get_bind().dialect.name == "postgresql":
        each = func.json_each_text(AuditRow.counts).table_valued("key", "value").alias("j")
        value: Any = cast(each.c.value, Integer)
    else:
        each = func.json_each(AuditRow.counts).table_valued("key", "value").alias("j")
        value = each.c.value
    per_class = s.execute(
        select(AuditRow.line, each.c.key, func.sum(value))
        .select_from(AuditRow.__table__.join(each, true()))
        .where(*window)
        .group_by(AuditRow.line, each.c.key)
    ).all()
    classes: dict[str | None, list[tuple[str, int]]] = {}
    for line, label, n in per_class:
        classes.setdefault(line, []).append((str(label), int(n or 0)))
    minutes = window_s / 60
    lines = []
    for line, frames, failed in sorted(per_line, key=lambda r: (r[0] is None, r[0] or "")):
        top = sorted(classes.get(line, []), key=lambda c: (-c[1], c[0]))[:TOP_CLASSES]
        lines.append(
            {
                "line": line,
                "frames": int(frames),
                "per_minute": round(frames / minutes, 3),
                "fail_rate": round(int(failed or 0) / frames, 4) if frames else 0.0,
                "top_classes": [{"label": label, "count": n} for label, n in top],
            }
        )
    return {"window_s": window_s, "lines": lines}
