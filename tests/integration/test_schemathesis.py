"""Schemathesis against the real app's /openapi.json on a real server: every operation,
all checks, a bounded and deterministic number of examples. 0 server errors and 0
answers that the schema does not document.

The schema is built from the app at import (operations become test ids at collection)
and checked to be the very document the running server serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from service.api import kserve
from service.api.app import create_app
from service.registry import Registry
from tests.support.grpc_app import settings_for
from tests.support.http import HTTP
from tests.support.servers import serve_app
from tests.support.tiny_onnx import write_artefact

MAX_EXAMPLES = 30
# Image bodies are bytes like application/octet-stream (schemathesis knows jpeg and png).
schemathesis.serializer.alias(
    ["image/bmp", "image/x-ms-bmp", "image/tiff"], "application/octet-stream"
)


def make_app(registry_root: Path, **settings: Any) -> FastAPI:
    return create_app(settings_for(registry_root, **settings), extra_routers=(kserve.install,))


# Every check, as configured by default, with two additions to what schema-valid data
# may be answered: a schema cannot say what makes bytes a decodable image, so a body of
# random bytes is rightly a 400 ``invalid_image``; and a valid but tiny deadline
# (``deadline_ms=5e-324``) is rightly missed: 504 ``deadline_exceeded``, the documented
# answer to the client's own budget, which is therefore not counted as a server error
# (every other 5xx, 500 above all, still is).
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "504"]},
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "504"]
            },
        }
    }
)
# Any existing registry builds the same routes; the served one is the tiny registry.
APP_SCHEMA = make_app(Path(__file__).parents[2] / "registry").openapi()
schema = schemathesis.openapi.from_dict(APP_SCHEMA, config=CONFIG)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    # The store, samples and submitted jobs live in this module's temp dir; no trainer
    # runs (the app has no embedded trainer and trainer=off), so no job ever starts.
    app = make_app(reg.root, data_root=tmp / "data", trainer="off")
    with serve_app(app) as url:
        assert HTTP.get(url + "/openapi.json").json() == APP_SCHEMA
        yield url
        running = HTTP.get(url + "/v1/jobs", params={"state": "running"}).json()
        assert running["total"] == 0


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, timeout=60)
    assert HTTP.get(base_url + "/readyz").status_code == 200
