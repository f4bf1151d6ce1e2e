"""Pure-ASGI middleware: request id, in-flight gauge, duration histogram, error counter.

Pure ASGI (not BaseHTTPMiddleware) because it sits on the hot path of every frame.
"""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observers import EDGE

_UNTIMED = frozenset({"/metrics", "/healthz", "/readyz"})


class ObservabilityMiddleware:
    """Tags each request with an id and records its metrics under its route template.

    The metrics object is created in the lifespan, after middleware is built, so it is
    looked up on the app state per request (``scope["app"]`` is set by Starlette).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = getattr(scope["app"].state, "ctx", None) if "app" in scope else None
        if scope["type"] != "http" or ctx is None:
            await self.app(scope, receive, send)
            return
        metrics = ctx.metrics
        rid = next((v.decode() for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = (rid or uuid.uuid4().hex[:16])[:64]
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        in_flight = metrics.in_flight.labels("http")
        in_flight.inc()
        edge = EDGE.set("kserve" if scope["path"].startswith("/v2/") else "rest")
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            EDGE.reset(edge)
            in_flight.dec()
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            if endpoint not in _UNTIMED:
                metrics.request_duration.labels("http", endpoint).observe(time.perf_counter() - t0)
            if status >= 400:
                metrics.errors.labels("http", endpoint, str(status)).inc()
