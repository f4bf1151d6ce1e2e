"""``/v1/models/{name}/history`` (read) and ``/v1/models/{name}/rollback`` (admin)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from service.api.data import StoreDep
from service.api.deps import Ctx
from service.api.errors import error_responses
from service.auth.http import TOKEN_NAME
from service.context import AppContext
from service.promotion import history
from service.promotion.history import move_alias
from service.promotion.rollback import PRODUCTION, plan_rollback
from service.store.store import Store

router = APIRouter(prefix="/v1/models", tags=["models"])


class HistoryItem(BaseModel):
    """One alias move."""

    id: int
    alias: str = Field(examples=["production"])
    from_version: int | None = Field(examples=[2])
    to_version: int = Field(examples=[3])
    actor: str = Field(examples=["token:ops", "pipeline", "rollback-monitor"])
    reason: str = Field(examples=["gate", "manual", "rollback", "auto_rollback", "shadow"])
    details: dict[str, Any]
    created_at: str


class History(BaseModel):
    """The moves of a model's aliases, newest first."""

    name: str
    items: list[HistoryItem]


class RollbackRequest(BaseModel):
    """Why production is rolled back (kept in the history)."""

    reason: str | None = Field(None, max_length=500, examples=["scratches missed on L2"])


class RollbackResult(BaseModel):
    """Production's version after the rollback (warm in this process) and before."""

    name: str
    alias: str
    version: int
    previous: int | None


def request_actor(request: Request) -> str:
    """Who made a request: ``token:<name>`` when tokens are configured, else ``api``."""
    token = getattr(request.state, TOKEN_NAME, None)
    return f"token:{token}" if token else "api"


async def move_served(
    ctx: AppContext,
    store: Store,
    name: str,
    alias: str,
    version: int,
    actor: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> int | None:
    """Move an alias the way a serving process does: load and warm ``version`` first (a
    version that cannot load is refused while the alias stays), move it through
    :func:`move_alias` off the event loop, then serve it before returning."""
    ctx.registry.get(name, version)  # 404 before anything changes
    if ctx.manager is not None:
        await ctx.manager.preload(name, version)
    previous = await asyncio.to_thread(
        move_alias, ctx.registry, store, name, alias, version, actor, reason, details
    )
    if ctx.manager is not None:
        await ctx.manager.refresh()
    return previous


@router.get(
    "/{name}/history",
    response_model=History,
    responses=error_responses(404),
    summary="The promotion history of a model",
)
def model_history(
    name: str,
    ctx: Ctx,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> History:
    """Every move of the model's aliases (who, from which version to which, why),
    newest first."""
    ctx.registry.versions(name)  # 404 for an unknown model
    rows = history.history(store, name, limit)
    return History(name=name, items=[HistoryItem(**r.to_dict()) for r in rows])


@router.post(
    "/{name}/rollback",
    response_model=RollbackResult,
    responses=error_responses(401, 403, 404, 409, 422, 503),
    summary="Roll production back to the version it had before its last move",
)
async def rollback(
    name: str, request: Request, ctx: Ctx, store: StoreDep, body: RollbackRequest | None = None
) -> RollbackResult:
    """Move `production` back to the version it pointed at before its last move (from
    the history; without one, the previous version number). Returns once this process
    serves that version warm. Needs the `admin` scope."""
    plan = await asyncio.to_thread(plan_rollback, ctx.registry, store, name)
    details = {"reason": body.reason if body else None, "from": plan.current, "source": plan.source}
    previous = await move_served(
        ctx, store, name, PRODUCTION, plan.target, request_actor(request), "rollback", details
    )
    return RollbackResult(name=name, alias=PRODUCTION, version=plan.target, previous=previous)
