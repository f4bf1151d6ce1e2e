"""The app's OpenAPI document, corrected to the error bodies the app really sends.

FastAPI documents every 422 as its own ``{"detail": [...]}``; lineinspect's handlers
(service/api/errors.py) answer validation errors with :class:`ErrorBody` instead, so
the schema says so (schemathesis checks every answer against it). A body that cannot
be parsed at all (not UTF-8, a broken multipart) is a 400 on every route that takes one.
An optional query or header parameter is documented as its type alone: HTTP has no
null, a parameter is present or absent (FastAPI writes ``anyOf: [type, null]``).
Error answers are JSON whatever the route's own media type (a ``text/plain`` log, an
image): FastAPI documents a route's extra responses under the route's media type.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def errors_documented(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every 422 answer documented as ``ErrorBody``, every error answer
    as JSON and a 400 for every operation with a request body."""
    for operations in schema.get("paths", {}).values():
        for op in operations.values():
            if "requestBody" in op and "400" not in op.get("responses", {}):
                op["responses"]["400"] = {
                    "description": "The body cannot be parsed.",
                    "content": {"application/json": {"schema": dict(_ERROR_REF)}},
                }
            for param in op.get("parameters", []):
                _not_nullable(param.get("schema", {}))
            for status, answer in op.get("responses", {}).items():
                if status[:1] in ("4", "5") and "content" in answer:
                    _json_only(answer["content"])
            invalid = op.get("responses", {}).get("422")
            if invalid is not None:
                invalid["description"] = "Invalid parameter or body."
                invalid["content"] = {"application/json": {"schema": dict(_ERROR_REF)}}
    components = schema.get("components", {}).get("schemas", {})
    for name in _FASTAPI_ONLY:
        components.pop(name, None)
    return schema


def _json_only(content: dict[str, Any]) -> None:
    """An error answer's ``content`` documented as the JSON the error handlers send."""
    if content and "application/json" not in content:
        media = next(iter(content.values()))
        content.clear()
        content["application/json"] = media


def _not_nullable(schema: dict[str, Any]) -> None:
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del schema["anyOf"]
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest


def install_openapi(app: FastAPI, error_body: type[Any]) -> None:
    """Serve the corrected document at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.setdefault("ErrorBody", error_body.model_json_schema())
            app.openapi_schema = errors_documented(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
