"""The app's routes as one flat list, and the methods a request's path supports."""

from __future__ import annotations

from typing import Any

import fastapi.routing
from starlette.routing import Match
from starlette.types import Scope


def app_routes(app: Any) -> list[Any]:
    """Every route of the app, those of included routers flattened, each with ``path``
    (the template), ``methods`` and ``matches(scope)``."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.16x
    return list(flatten(app.router.routes)) if flatten else list(app.router.routes)


def allowed_methods(scope: Scope) -> list[str]:
    """The methods of every route whose path matches this request's: the ``Allow`` of a
    405 (Starlette names only the first route of the path, one method per handler)."""
    methods: set[str] = set()
    for route in app_routes(scope["app"]):
        if route.matches(scope)[0] != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)
