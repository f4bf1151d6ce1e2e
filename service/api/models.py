"""Model registry endpoints: list, show, promote (set an alias)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from service.api.deps import Ctx
from service.api.errors import ErrorBody
from service.context import AppContext
from service.errors import Unauthorized

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


def _check_admin(ctx: AppContext, authorization: str | None) -> None:
    token = ctx.settings.admin_token
    if token is None:
        return
    expected = f"Bearer {token.get_secret_value()}"
    if authorization is None or not hmac.compare_digest(authorization, expected):
        raise Unauthorized("promotion needs 'Authorization: Bearer <admin token>'")


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
        name=name, versions=versions, aliases=reg.aliases(name),
        cards={v: reg.get(name, v).card for v in versions},
        serving=ctx.manager.aliases(name) if ctx.manager else {},
    )  # fmt: skip


@router.put(
    "/{name}/aliases/{alias}",
    response_model=AliasResult,
    responses={s: {"model": ErrorBody} for s in (401, 404, 422)},
    summary="Promote: point an alias at a version (hot swap)",
)
async def set_alias(
    name: str,
    alias: str,
    body: AliasUpdate,
    ctx: Ctx,
    authorization: Annotated[str | None, Header()] = None,
) -> AliasResult:
    """Point `alias` at `version`. Returns once this process serves the new version warm;
    other replicas follow within `registry_poll_s`."""
    _check_admin(ctx, authorization)
    ctx.registry.get(name, body.version)  # 404 before anything changes
    if ctx.manager is not None:
        # Load and warm first: a version that cannot load is refused (422) while the
        # alias still points at the old one, instead of a promotion that never serves.
        await ctx.manager.preload(name, body.version)
    previous = ctx.registry.set_alias(name, alias, body.version)
    if ctx.manager is not None:
        await ctx.manager.refresh()
    return AliasResult(name=name, alias=alias, version=body.version, previous=previous)
