"""FastAPI dependencies of the REST routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.context import AppContext


def get_ctx(request: Request) -> AppContext:
    """FastAPI dependency returning the app's :class:`AppContext`."""
    ctx: AppContext = request.app.state.ctx
    return ctx


#: A route parameter receiving the app's context.
Ctx = Annotated[AppContext, Depends(get_ctx)]
