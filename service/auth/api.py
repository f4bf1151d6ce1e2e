"""``GET /v1/auth/scopes``: what the presented token may do (open, so a client such as
the operator page can ask before it offers anything)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from service.api.errors import error_responses
from service.auth.tokens import Scope, TokenVerifier

router = APIRouter(tags=["auth"])


class ScopesOut(BaseModel):
    """Whether tokens are checked, and what the presented one grants."""

    enabled: bool = Field(description="False: no tokens configured, every route is open.")
    token: str | None = Field(None, description="The name of the presented token's entry.")
    scopes: list[Scope] = Field(
        examples=[["label", "read"]],
        description="Granted scopes: every scope when auth is off; none without a token.",
    )


def verifier(request: Request) -> TokenVerifier:
    """The app's verifier (installed with the auth middleware)."""
    found: TokenVerifier = request.app.state.token_verifier
    return found


@router.get(
    "/v1/auth/scopes",
    response_model=ScopesOut,
    summary="The scopes of the presented token",
    responses=error_responses(401),
)
async def token_scopes(request: Request) -> ScopesOut:
    """The presented ``Authorization: Bearer`` token's scopes; 401 for an invalid token,
    no scopes without one."""
    v = verifier(request)
    if not v.enabled:
        return ScopesOut(enabled=False, token=None, scopes=list(Scope))
    header = request.headers.get("authorization")
    if header is None:
        return ScopesOut(enabled=True, token=None, scopes=[])
    entry = v.authenticate(header)
    return ScopesOut(enabled=True, token=entry.name, scopes=list(entry.scopes))
