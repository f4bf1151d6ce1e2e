"""The REST mapping of the error hierarchy (the only place HTTP statuses are chosen).

Installed once per app: lineinspect errors, Starlette's HTTP errors (unmatched routes,
wrong methods, multipart limits), validation errors and anything unexpected all answer
the one documented body ``{"error", "message", "request_id"}``. An unexpected error is
answered by :class:`UnhandledErrors` inside the app, so the server keeps the keep-alive
connection (an exception reaching uvicorn makes it drop the connection).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.openapi import install_openapi
from service.api.routes import allowed_methods
from service.errors import LineInspectError, QueueFull, client_message

log = logging.getLogger(__name__)

#: Error codes of the HTTP errors Starlette raises itself (by status).
HTTP_CODES = {
    400: "invalid_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
}
_INTERNAL = "internal error; see server log for this request id"


class ErrorBody(BaseModel):
    """Every error answer: a stable code, a human message and the request id."""

    error: str = Field(examples=["invalid_image"])
    message: str = Field(examples=["not a decodable image: cannot identify image file"])
    request_id: str | None = Field(None, examples=["3f2a9c0e4b1d4e6f"])


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer these error statuses (OpenAPI)."""
    return {status: {"model": ErrorBody} for status in statuses}


def _request_id(scope: Scope) -> str | None:
    rid = scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


def error_response(request: Request, status: int, code: str, message: str) -> JSONResponse:
    """A JSON error answer carrying the request id."""
    body = ErrorBody(
        error=code, message=client_message(message), request_id=_request_id(request.scope)
    )
    return JSONResponse(body.model_dump(), status_code=status)


class UnhandledErrors:
    """Pure-ASGI guard: an unexpected exception becomes a logged 500 ``internal`` answer
    and is not re-raised, so the connection stays open for the client's next request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if started:  # half an answer is out: only closing the connection is honest
                raise
            log.exception("unhandled error (request_id=%s)", _request_id(scope))
            body = ErrorBody(error="internal", message=_INTERNAL, request_id=_request_id(scope))
            await JSONResponse(body.model_dump(), status_code=500)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Map LineInspectError subclasses, HTTP and validation errors, and unknown errors."""

    @app.exception_handler(LineInspectError)
    async def _known(request: Request, exc: LineInspectError) -> JSONResponse:
        resp = error_response(request, exc.http_status, exc.code, exc.message)
        if isinstance(exc, QueueFull):
            resp.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return resp

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        status = exc.status_code
        code = HTTP_CODES.get(status, "internal" if status >= 500 else "invalid_input")
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
        resp = error_response(request, status, code, message)
        resp.headers.update(exc.headers or {})  # e.g. Allow on 405
        if status == 405:
            resp.headers["Allow"] = ", ".join(allowed_methods(request.scope))
        return resp

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return error_response(request, 422, "invalid_request", "; ".join(parts))

    @app.exception_handler(Exception)
    async def _unknown(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error (request_id=%s)", _request_id(request.scope))
        return error_response(request, 500, "internal", _INTERNAL)

    app.add_middleware(UnhandledErrors)  # innermost: the app's other middleware wrap it
    install_openapi(app, ErrorBody)
