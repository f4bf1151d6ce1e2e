"""The REST mapping of the error hierarchy (the only place HTTP statuses are chosen)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.errors import LineInspectError, QueueFull

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Every error answer: a stable code, a human message and the request id."""

    error: str = Field(examples=["invalid_image"])
    message: str = Field(examples=["not a decodable image: cannot identify image file"])
    request_id: str | None = Field(None, examples=["3f2a9c0e4b1d4e6f"])


def _request_id(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


def error_response(request: Request, status: int, code: str, message: str) -> JSONResponse:
    """A JSON error answer carrying the request id."""
    body = ErrorBody(error=code, message=message, request_id=_request_id(request))
    return JSONResponse(body.model_dump(), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map LineInspectError subclasses, validation errors and unknown errors to JSON."""

    @app.exception_handler(LineInspectError)
    async def _known(request: Request, exc: LineInspectError) -> JSONResponse:
        resp = error_response(request, exc.http_status, exc.code, exc.message)
        if isinstance(exc, QueueFull):
            resp.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return resp

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return error_response(request, 422, "invalid_request", "; ".join(parts))

    @app.exception_handler(Exception)
    async def _unknown(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error (request_id=%s)", _request_id(request))
        return error_response(
            request, 500, "internal", "internal error; see server log for this request id"
        )
