"""Every error answers the documented body ``{"error", "message", "request_id"}`` (REST)
or INVALID_ARGUMENT (gRPC), without object reprs, and keeps the connection open."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from fastapi import APIRouter, FastAPI

from service.api import kserve
from service.api.app import create_app
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.grpc.server import GrpcEdge
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.support.grpc_app import Served, settings_for
from tests.support.http import HTTP
from tests.support.servers import serve_app
from tests.support.tiny_onnx import write_artefact

JPEG = encode(defect_image())
B = "XyZzy"


def _boom_routes(app: FastAPI) -> None:
    router = APIRouter()

    @router.get("/test/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("a bug <object at 0xdeadbeef>")

    app.include_router(router)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("errors")
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    edge = GrpcEdge(port=0)
    app = create_app(
        settings_for(reg.root), extra_routers=(kserve.install, _boom_routes), edges=(edge,)
    )
    with serve_app(app) as url:
        yield Served(url, f"127.0.0.1:{edge.port}", edge)


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{B}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{B}--\r\n".encode()


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={B}"}
# (id, method, path, request kwargs, status, error code)
CORPUS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    (
        "two-files",
        "POST",
        "/v1/inspect",
        {
            "content": multipart([("image", "a.jpg", JPEG), ("image", "b.jpg", JPEG)]),
            "headers": MULTIPART,
        },
        400,
        "invalid_input",
    ),
    (
        "17-fields",
        "POST",
        "/v1/inspect",
        {"content": multipart([(f"f{i}", None, b"v") for i in range(17)]), "headers": MULTIPART},
        400,
        "invalid_input",
    ),
    (
        "no-boundary",
        "POST",
        "/v1/inspect",
        {"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}},
        400,
        "invalid_input",
    ),
    ("wrong-method", "DELETE", "/v1/inspect", {}, 405, "method_not_allowed"),
    ("wrong-method-v2", "PUT", "/v2/health/live", {}, 405, "method_not_allowed"),
    (
        "put-not-json",
        "PUT",
        "/v1/models/tiny/aliases/x",
        {"content": b"not json", "headers": {"Content-Type": "application/json"}},
        422,
        "invalid_request",
    ),
    ("put-no-type", "PUT", "/v1/models/tiny/aliases/x", {"content": b"{{"}, 422, "invalid_request"),
    ("unmatched", "GET", "/nope", {}, 404, "not_found"),
    ("unmatched-v2", "GET", "/v2/nope/deeper", {}, 404, "not_found"),
    (
        "not-an-image",
        "POST",
        "/v1/inspect",
        {"content": b"GIF89a" + b"\0" * 64, "headers": {"Content-Type": "image/jpeg"}},
        400,
        "invalid_image",
    ),
    ("bug", "GET", "/test/boom", {}, 500, "internal"),
]


def assert_documented(status: int, body: dict[str, Any], expected: tuple[int, str]) -> None:
    assert (status, body.get("error")) == expected, body
    assert set(body) == {"error", "message", "request_id"} and body["request_id"]
    assert " at 0x" not in body["message"]


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_every_error_has_the_documented_body(served: Served, case: tuple[Any, ...]) -> None:
    _, method, path, kwargs, status, code = case
    r = HTTP.request(method, served.url + path, **kwargs)
    assert r.headers["content-type"] == "application/json"
    assert_documented(r.status_code, r.json(), (status, code))
    if status == 405:
        assert r.headers["allow"]
    assert HTTP.get(served.url + "/readyz").status_code == 200


@pytest.mark.parametrize("path", ["/v1/models/..%2F..%2Fetc", "/v1/models/tiny/..%2F..%2Fx"])
def test_encoded_traversal_in_a_model_path_is_a_documented_404(served: Served, path: str) -> None:
    """Sent verbatim (no client-side normalisation), over a raw connection."""
    conn = http.client.HTTPConnection(urlsplit(served.url).netloc, timeout=60)
    conn.request("GET", path)
    r = conn.getresponse()
    assert_documented(r.status, json.loads(r.read()), (404, "not_found"))
    conn.close()


@pytest.mark.parametrize("first", ["/test/boom", "/nope", "/v1/inspect"])
def test_an_error_keeps_the_keep_alive_connection(served: Served, first: str) -> None:
    conn = http.client.HTTPConnection(urlsplit(served.url).netloc, timeout=60)
    if first == "/v1/inspect":
        conn.request("POST", first, body=JPEG[:100], headers={"Content-Type": "image/jpeg"})
    else:
        conn.request("GET", first)
    r = conn.getresponse()
    r.read()
    assert r.status >= 400 and not r.will_close
    sock = conn.sock
    conn.request("POST", "/v1/inspect", body=JPEG, headers={"Content-Type": "image/jpeg"})
    r = conn.getresponse()
    assert r.status == 200 and b"verdict" in r.read()
    assert conn.sock is sock  # the same connection answered both
    conn.close()


def test_v2_health_answers_json(served: Served) -> None:
    for path, key in (("/v2/health/live", "live"), ("/v2/health/ready", "ready")):
        r = HTTP.get(served.url + path)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json() == {key: True}


@pytest.mark.parametrize(
    "method",
    [
        "/lineinspect.v1.InspectionService/Inspect",
        "/inference.GRPCInferenceService/ModelInfer",
        "/inference.GRPCInferenceService/ServerReady",
    ],
)
def test_grpc_bytes_that_are_not_protobuf_are_invalid_argument(served: Served, method: str) -> None:
    channel = grpc.insecure_channel(served.target)
    call = channel.unary_unary(method)
    for junk in (b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x12"):
        with pytest.raises(grpc.RpcError) as err:
            call(junk, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, junk
        assert "not a valid protobuf" in (err.value.details() or "")
    assert HTTP.get(served.url + "/readyz").status_code == 200


def test_grpc_stream_with_a_bad_message_answers_then_ends_invalid_argument(
    served: Served,
) -> None:
    channel = grpc.insecure_channel(served.target)
    call = channel.stream_stream("/lineinspect.v1.InspectionService/StreamInspect")
    good = pb.InspectRequest(image=JPEG, encoding="jpeg", frame_id="f1").SerializeToString()
    answers = []
    with pytest.raises(grpc.RpcError) as err:
        for raw in call(iter([good, b"\xff\xff\xff\xff"]), timeout=60):
            answers.append(pb.InspectResponse.FromString(raw))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [a.frame_id for a in answers] == ["f1"]
    assert answers[0].status == pb.FRAME_STATUS_INSPECTED
