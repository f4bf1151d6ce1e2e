"""The OpenAPI description of the KServe v2 HTTP routes: bodies, answers and errors.

The routes themselves are in service/api/kserve.py; the protocol's tensors in
service/kserve.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class V2Error(BaseModel):
    """The v2 error body."""

    error: str


def _errors(**described: str) -> dict[int | str, dict[str, Any]]:
    return {int(s[1:]): {"model": V2Error, "description": d} for s, d in described.items()}


META_ERRORS = _errors(
    s400="A version given with a full model reference.", s404="Unknown model or version."
)
INFER_ERRORS = {
    **META_ERRORS,
    **_errors(
        s400="Malformed request: bad JSON or tensors, corrupt image, wrong inputs or outputs.",
        s413="Body (or decompressed body) over `max_body_bytes`, or an image over `max_pixels`.",
        s415="Content encoding other than gzip or deflate.",
        s429="Queue full: retry later.",
        s503="Not ready (models warming up) or a backing service is down.",
        s504="The deadline (`timeout` parameter) passed before the images were inspected.",
    ),
}


class Live(BaseModel):
    """Server liveness."""

    live: bool


class Ready(BaseModel):
    """Server readiness."""

    ready: bool


class ModelReadiness(BaseModel):
    """Readiness of one model version."""

    name: str
    ready: bool


_TENSOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string", "enum": ["image_bytes", "image_pixels", "image_tensor"]},
        "datatype": {"type": "string", "enum": ["BYTES", "UINT8", "FP32"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 8},
        "parameters": {
            "type": "object",
            "properties": {
                "binary_data_size": {"type": "integer"},
                "image_sha256": {
                    "type": "string",
                    "description": "Hex SHA-256 of each image's bytes, comma-separated in "
                    "batch order (image_bytes, image_pixels); checked before the decode.",
                },
            },
        },
        "data": {"type": "array", "description": "Row-major values, flat or nested."},
    },
}
INFER_BODY = {
    "required": True,
    "description": "A v2 inference request: JSON, or a JSON header of "
    "`Inference-Header-Content-Length` bytes followed by the binary tensor data.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {"type": "array", "items": _TENSOR_SCHEMA},
                    "outputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "parameters": {"type": "object"},
                            },
                        },
                    },
                },
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}

READY_ERRORS = {**META_ERRORS, 503: {"model": ModelReadiness, "description": "Not ready."}}
