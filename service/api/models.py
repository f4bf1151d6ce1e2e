"""Model registry endpoints: list, show, promote (set an alias)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from service.api.data import StoreDep
from service.api.deps import Ctx
from service.api.errors import ErrorBody
from service.promotion.api import move_served, request_actor

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelSummary(BaseModel):
    """A registered model: its versions and aliases."""

    name: str = Field(examples=["neu-det-student"])
    versions: list[int] = Field(examples=[[1, 2]])
    aliases: dict[str, int] = Field(examples=[{"production": 2, "candidate": 3}])


class ModelDetail(ModelSummary):
    """A model with the card of every version and what this process serves."""

    cards: dict[int, dict[str, Any]]
    serving: dict[str, int] = Field(description="Aliases as this process serves them now.")


class AliasUpdate(BaseModel):
    """Body of a promotion."""

    version: int = Field(ge=1, examples=[3])


class AliasResult(BaseModel):
    """Outcome of a promotion; the swap is complete (new version warm) when this returns."""

    name: str
    alias: str
    version: int
    previous: int | None


@router.get("", response_model=list[ModelSummary], summary="List registered models")
async def list_models(ctx: Ctx) -> list[ModelSummary]:
    """Every model in the registry with its versions and aliases."""
    reg = ctx.registry
    return [
        ModelSummary(name=n, versions=reg.versions(n), aliases=reg.aliases(n)) for n in reg.names()
    ]


@router.get("/{name}", response_model=ModelDetail, responses={404: {"model": ErrorBody}})
async def show_model(name: str, ctx: Ctx) -> ModelDetail:
    """One model: versions, aliases, cards, and the aliases this process serves."""
    reg = ctx.registry
    versions = reg.versions(name)
    return ModelDetail(
        name=name,
        versions=versions,
        aliases=reg.aliases(name),
        cards={v: reg.get(name, v).card for v in versions},
        serving=ctx.manager.aliases(name) if ctx.manager else {},
    )


@router.put(
    "/{name}/aliases/{alias}",
    response_model=AliasResult,
    responses={s: {"model": ErrorBody} for s in (401, 403, 404, 422, 503)},
    summary="Promote: point an alias at a version (hot swap)",
)
async def set_alias(
    name: str,
    alias: str,
    body: AliasUpdate,
    request: Request,
    ctx: Ctx,
    store: StoreDep,
) -> AliasResult:
    """Point `alias` at `version`. Returns once this process serves the new version warm;
    other replicas follow within `registry_poll_s`. The move is appended to the
    promotion history (reason `manual`). Needs the `admin` scope."""
    # Load and warm first: a version that cannot load is refused (422) while the alias
    # still points at the old one, instead of a promotion that never serves.
    previous = await move_served(
        ctx, store, name, alias, body.version, request_actor(request), "manual"
    )
    return AliasResult(name=name, alias=alias, version=body.version, previous=previous)
