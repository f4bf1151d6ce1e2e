"""The HTTP edge of access control: one pure-ASGI middleware for every route.

It runs before routing and before the body is read, finds the route the request will
reach (the app's own route matching), looks up its scope in
:data:`service.auth.policy.HTTP_SCOPES` and answers 401/403 in the documented error
shape (``{"error", "message", "request_id"}``) when the ``Authorization: Bearer``
token does not grant it. A request that matches no route needs a valid token of any
scope before it reaches the router's own 404/405 (fail closed: a path the lookup
missed is never served anonymously).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response
from service.api.routes import app_routes
from service.auth.policy import http_scope
from service.auth.tokens import TokenEntry, TokenVerifier
from service.errors import LineInspectError, Unauthorized

log = logging.getLogger(__name__)


#: ``request.state`` attribute holding the name of the token a request presented.
TOKEN_NAME = "token_name"
#: Distinct (method, root path, path) lookups remembered; paths carry model names only.
_CACHE_SIZE = 4096


class AuthMiddleware:
    """Checks each request's token against the scope of the route it reaches."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app, self.verifier = app, verifier
        self._routes: list[Any] | None = None  # the app's, read at the first request
        self._matched: dict[tuple[str, str, str], Any] = {}

    def matched_route(self, scope: Scope) -> Any:
        """The route that fully matches this request (path and method), else None."""
        key = (scope["method"], scope.get("root_path", ""), scope["path"])
        if key in self._matched:
            return self._matched[key]
        if self._routes is None:
            self._routes = app_routes(scope["app"])
        found = next((r for r in self._routes if r.matches(scope)[0] == Match.FULL), None)
        if len(self._matched) >= _CACHE_SIZE:
            self._matched.clear()
        self._matched[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.verifier.enabled:
            await self.app(scope, receive, send)
            return
        route = self.matched_route(scope)
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        value = header.decode("latin-1") if header else None
        entry: TokenEntry | None
        try:
            if route is None:
                entry = self.verifier.authenticate(value)
            else:
                entry = self.verifier.authorize(value, http_scope(scope["method"], route.path))
        except LineInspectError as exc:
            if route is not None:
                scope["route"] = route  # the request metrics name the route that refused
            resp = error_response(Request(scope), exc.http_status, exc.code, exc.message)
            if isinstance(exc, Unauthorized):
                resp.headers["WWW-Authenticate"] = 'Bearer realm="lineinspect"'
            await resp(scope, receive, send)
            return
        if entry is not None:  # who asked, for the routes that record it (request.state)
            scope.setdefault("state", {})[TOKEN_NAME] = entry.name
        await self.app(scope, receive, send)


def install(app: FastAPI, tokens: tuple[TokenEntry, ...] | list[TokenEntry]) -> None:
    """Add the middleware (call before the observability middleware, so that one stays
    outermost and a refusal carries the request id); warn once when the app is open."""
    if not tokens:
        log.warning(
            "no tokens configured: every route and RPC is open to anyone who can reach "
            "this port (see docs/operations.md, Security)"
        )
    app.add_middleware(AuthMiddleware, verifier=TokenVerifier(tokens))
