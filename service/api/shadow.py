"""``GET /v1/models/{name}/shadow``: how a lineage's shadow version compares with its
production version (service/shadow; docs/learning.md, "Shadow serving")."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.errors import error_responses
from service.errors import NotFound
from service.shadow.serving import ShadowServing
from service.shadow.summary import ShadowSummary

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get(
    "/{name}/shadow",
    response_model=ShadowSummary,
    summary="Shadow vs production comparison",
    responses=error_responses(404),
)
async def shadow_summary(name: str, request: Request) -> ShadowSummary:
    """Comparisons since the production or shadow version last changed; 404 when no
    shadow runs for `name` in this process (no shadow/candidate alias, shadow serving
    off, or `queue=redis`, where the inference workers shadow)."""
    shadow: ShadowServing | None = getattr(request.app.state, "shadow", None)
    summary = shadow.summary(name) if shadow is not None else None
    if summary is None:
        raise NotFound(f"no shadow version runs for model {name!r}")
    return summary
