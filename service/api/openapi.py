"""The app's OpenAPI document, corrected to the error bodies the app really sends.

FastAPI documents every 422 as its own ``{"detail": [...]}``; lineinspect's handlers
(service/api/errors.py) answer validation errors with :class:`ErrorBody` instead, so
the schema says so (schemathesis checks every answer against it).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def errors_documented(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every 422 answer documented as ``ErrorBody``."""
    for operations in schema.get("paths", {}).values():
        for op in operations.values():
            invalid = op.get("responses", {}).get("422")
            if invalid is not None:
                invalid["description"] = "Invalid parameter or body."
                invalid["content"] = {"application/json": {"schema": dict(_ERROR_REF)}}
    components = schema.get("components", {}).get("schemas", {})
    for name in _FASTAPI_ONLY:
        components.pop(name, None)
    return schema


def install_openapi(app: FastAPI, error_body: type[Any]) -> None:
    """Serve the corrected document at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.setdefault("ErrorBody", error_body.model_json_schema())
            app.openapi_schema = errors_documented(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
