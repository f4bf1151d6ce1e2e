"""The OpenAPI document names the answers the routes really give (incl. KServe v2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.api import kserve
from service.api.app import create_app
from service.config import load_settings

REGISTRY = Path(__file__).resolve().parents[2] / "registry"


def openapi() -> dict[str, Any]:
    settings = load_settings(None, registry_root=REGISTRY)
    return create_app(settings, extra_routers=(kserve.install,)).openapi()


def test_v2_routes_document_their_errors_and_bodies() -> None:
    paths = openapi()["paths"]
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert {"400", "404", "413", "415", "429", "503", "504"} <= set(infer["responses"])
    body = infer["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["inputs"] and "parameters" in body["properties"]
    assert {"400", "404"} <= set(paths["/v2/models/{model_name}"]["get"]["responses"])
    assert "503" in paths["/v2/models/{model_name}/ready"]["get"]["responses"]
    for path in ("/v2/health/live", "/v2/health/ready"):
        ok = paths[path]["get"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"]["$ref"].startswith("#/components/schemas/")


def test_errors_are_documented_as_the_body_the_handlers_send() -> None:
    doc = openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for operations in doc["paths"].values():
        for op in operations.values():
            for status, answer in op["responses"].items():
                if status.startswith("4") and "content" in answer:
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[1] in (
                        "ErrorBody",
                        "V2Error",
                        "Ready",
                        "ModelReadiness",
                    )
            if "requestBody" in op:
                assert "400" in op["responses"]


def test_optional_parameters_are_not_nullable() -> None:
    params = openapi()["paths"]["/v1/inspect"]["post"]["parameters"]
    deadline = next(p for p in params if p["name"] == "x-deadline-ms")
    assert deadline["schema"]["type"] == "number" and "anyOf" not in deadline["schema"]
