"""The audit trail over REST (``read`` scope): filtered pages, one frame, per-line summary.

Handlers are plain functions: FastAPI runs them in its thread pool, off the event loop,
because the store's database calls block.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from service.api.data import StoreDep
from service.api.errors import error_responses
from service.audit import queries
from service.audit.rows import to_json
from service.errors import InvalidInput, NotFound
from service.store.db import MAX_INT

router = APIRouter(tags=["audit"])

#: Largest page of ``GET /v1/audit``.
MAX_LIMIT = 1000
#: Longest window of ``GET /v1/lines`` (30 days).
MAX_WINDOW_S = 30 * 86400

Text = Annotated[str | None, Query(max_length=128)]


def filters(
    line: str | None,
    camera: str | None,
    verdict: str | None,
    model: str | None,
    start: str | None,
    end: str | None,
) -> queries.Filters:
    """Validated filters (a time without a zone is UTC)."""
    for value in (line, camera, model):
        if value is not None and "\x00" in value:
            raise InvalidInput("filters cannot hold NUL characters")
    return queries.Filters(
        line,
        camera,
        verdict,
        model,
        None if start is None else queries.parse_time(start),
        None if end is None else queries.parse_time(end),
    )


def _time_query(alias: str, what: str) -> Any:
    return Query(
        alias=alias,
        max_length=64,
        description=f"ISO 8601 time, {what}; no zone = UTC",
        json_schema_extra={"format": "date-time"},
    )


@router.get(
    "/v1/audit",
    summary="Audit rows, newest first, filtered and paged",
    responses=error_responses(400),
)
def list_audit(
    store: StoreDep,
    line: Text = None,
    camera: Text = None,
    verdict: Literal["pass", "fail"] | None = None,
    model: Annotated[str | None, Query(max_length=160, description="name or name:version")] = None,
    start: Annotated[str | None, _time_query("from", "inclusive")] = None,
    end: Annotated[str | None, _time_query("to", "exclusive")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """{"total", "offset", "limit", "items": [row]}; row shape in docs/audit.md."""
    f = filters(line, camera, verdict, model, start, end)
    with store.transaction() as s:
        total, rows = queries.page(s, f, offset, limit)
        return {
            "total": total,
            "offset": offset,
            "limit": limit,
            "items": [to_json(r) for r in rows],
        }


@router.get(
    "/v1/audit/{frame_id}",
    summary="The audit row of one frame",
    responses=error_responses(404),
)
def show_audit(frame_id: str, store: StoreDep) -> dict[str, Any]:
    """What answered this frame, with which thresholds, and what it answered."""
    with store.transaction() as s:
        row = queries.one(s, frame_id) if "\x00" not in frame_id else None
        if row is None:
            raise NotFound(f"no audit row for frame {frame_id[:128]!r}")
        return to_json(row)


@router.get("/v1/lines", summary="Per-line throughput, fail rate and top defect classes")
def lines(
    store: StoreDep, window_s: Annotated[float, Query(ge=1, le=MAX_WINDOW_S)] = 3600
) -> dict[str, Any]:
    """From the audit rows of the last ``window_s`` seconds: per line, frames, frames per
    minute (over the whole window), fail rate and the most detected classes."""
    with store.transaction() as s:
        return queries.lines_summary(s, window_s)
