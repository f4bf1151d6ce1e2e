"""The client's image digest on every edge of a real server: checked before the decode,
malformed values refused as ``invalid_input``, and ``require_image_digest`` (the plant's
fail-safe switch) refusing every frame that comes without one (``digest_required``):
REST raw and multipart, gRPC unary and stream, KServe v2 HTTP and gRPC, and through
the Redis queue, where the worker checks the digest the API passed on."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from service.api.app import create_app
from service.config import load_settings
from service.grpc.generated.kserve import grpc_predict_v2_pb2_grpc as kpb_grpc
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.grpc.generated.lineinspect.v1 import inspection_pb2_grpc as pb_grpc
from service.registry import Registry
from service.worker_app import create_worker_app
from tests.conftest import defect_image, encode
from tests.support.corrupt import content_digest, flipped_bytes, kserve_body, kserve_grpc_request
from tests.support.grpc_app import Served, serve_grpc, settings_for
from tests.support.http import HTTP
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import serve_app
from tests.support.tiny_onnx import write_artefact

__all__ = ["redis_server"]  # the fixture

JPEG = encode(defect_image())
SHA = hashlib.sha256(JPEG).digest()
FLIPPED = flipped_bytes(JPEG)["flip-byte-50%"]
INSPECT = "/v1/inspect"
INFER = "/v2/models/tiny/infer"


def make_registry(tmp: Path) -> Path:
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    return reg.root


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with ``require_image_digest: true``."""
    root = make_registry(tmp_path_factory.mktemp("digest"))
    with serve_grpc(settings_for(root, require_image_digest=True)) as s:
        yield s


def post(url: str, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
    r = HTTP.post(url + INSPECT, headers={"Content-Type": "image/jpeg", **(headers or {})}, **kw)
    return r.status_code, r.json()


def error_of(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return exc.code(), dict(exc.trailing_metadata())["lineinspect-error"]


def test_rest_requires_the_digest(strict: Served) -> None:
    status, body = post(strict.url, content=JPEG)
    assert (status, body["error"]) == (400, "digest_required")
    assert set(body) == {"error", "message", "request_id"}
    status, body = post(strict.url, {"Content-Digest": content_digest(JPEG)}, content=JPEG)
    assert status == 200 and body["verdict"] == "fail"
    part = ("p.jpg", JPEG, "image/jpeg")
    r = HTTP.post(strict.url + INSPECT, files={"image": part})
    assert (r.status_code, r.json()["error"]) == (400, "digest_required")
    with_digest = (*part, {"Content-Digest": content_digest(JPEG)})
    r = HTTP.post(strict.url + INSPECT, files={"image": with_digest})
    assert r.status_code == 200 and r.json()["image"] == "p.jpg"


@pytest.mark.parametrize(
    "value",
    [
        "sha-256=:AAAA:",
        "sha-512=:" + base64.b64encode(hashlib.sha512(JPEG).digest()).decode() + ":",
    ],
    ids=["short", "no-sha-256"],
)
def test_rest_refuses_a_malformed_digest(strict: Served, value: str) -> None:
    status, body = post(strict.url, {"Content-Digest": value}, content=JPEG)
    assert (status, body["error"]) == (400, "invalid_input")
    part = ("p.jpg", JPEG, "image/jpeg", {"Content-Digest": value})
    r = HTTP.post(strict.url + INSPECT, files={"image": part})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")


def test_rest_multipart_wants_the_digest_on_the_part(strict: Served) -> None:
    """A request-level Content-Digest of a form covers the whole form, not the image."""
    r = HTTP.post(
        strict.url + INSPECT,
        files={"image": ("p.jpg", JPEG, "image/jpeg")},
        headers={"Content-Digest": content_digest(JPEG)},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_input"
    assert "part" in r.json()["message"]


def test_grpc_requires_the_digest(strict: Served) -> None:
    stub = pb_grpc.InspectionServiceStub(grpc.insecure_channel(strict.target))
    with pytest.raises(grpc.RpcError) as err:
        stub.Inspect(pb.InspectRequest(image=JPEG), timeout=60)
    assert error_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "digest_required")
    with pytest.raises(grpc.RpcError) as err:
        stub.Inspect(pb.InspectRequest(image=JPEG, image_sha256=SHA.hex().encode()), timeout=60)
    assert error_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_input")
    ok = stub.Inspect(pb.InspectRequest(image=JPEG, image_sha256=SHA), timeout=60)
    assert ok.record.verdict == pb.VERDICT_FAIL
    frames = [
        pb.InspectRequest(image=JPEG, frame_id="none"),
        pb.InspectRequest(image=JPEG, frame_id="short", image_sha256=SHA[:16]),
        pb.InspectRequest(image=FLIPPED, frame_id="flipped", image_sha256=SHA),
        pb.InspectRequest(image=JPEG, frame_id="ok", image_sha256=SHA),
    ]
    answers = {a.frame_id: a for a in stub.StreamInspect(iter(frames), timeout=120)}
    assert {k: a.error.code for k, a in answers.items()} == {
        "none": "digest_required",
        "short": "invalid_input",
        "flipped": "invalid_image",
        "ok": "",
    }
    assert answers["ok"].status == pb.FRAME_STATUS_INSPECTED
    assert {answers[k].status for k in ("none", "short", "flipped")} == {pb.FRAME_STATUS_FAILED}


def test_kserve_requires_the_digest(strict: Served) -> None:
    url = strict.url + INFER
    r = HTTP.post(url, content=kserve_body(JPEG))
    assert r.status_code == 400 and "require_image_digest" in r.json()["error"]
    assert HTTP.post(url, content=kserve_body(JPEG, SHA.hex())).status_code == 200
    for bad in (SHA.hex()[:-2], f"{SHA.hex()},{SHA.hex()}"):  # too short; two for one image
        r = HTTP.post(url, content=kserve_body(JPEG, bad))
        assert r.status_code == 400 and "image_sha256" in r.json()["error"], bad
    # raw pixels: the digest of the image's row-major H*W*C bytes
    pixels = defect_image()
    body = {
        "inputs": [
            {
                "name": "image_pixels",
                "datatype": "UINT8",
                "shape": [1, *pixels.shape],
                "data": pixels.reshape(-1).tolist(),
                "parameters": {"image_sha256": hashlib.sha256(pixels.tobytes()).hexdigest()},
            }
        ]
    }
    assert HTTP.post(url, content=json.dumps(body)).status_code == 200
    body["inputs"][0]["data"] = np.roll(pixels.reshape(-1), 1).tolist()
    r = HTTP.post(url, content=json.dumps(body))
    assert r.status_code == 400 and "SHA-256" in r.json()["error"]
    # a preprocessed tensor carries no image bytes: refused under require_image_digest
    meta = HTTP.get(strict.url + "/v2/models/tiny").json()
    size = next(i["shape"][-1] for i in meta["inputs"] if i["name"] == "image_tensor")
    tensor = {"name": "image_tensor", "datatype": "FP32", "shape": [1, 3, size, size]}
    tensor["data"] = [0.0] * (3 * size * size)
    r = HTTP.post(url, content=json.dumps({"inputs": [tensor]}))
    assert r.status_code == 400 and "require_image_digest" in r.json()["error"]
    tensor["parameters"] = {"image_sha256": SHA.hex()}
    r = HTTP.post(url, content=json.dumps({"inputs": [tensor]}))
    assert r.status_code == 400 and "image_bytes" in r.json()["error"]
    stub = kpb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(strict.target))
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(kserve_grpc_request(JPEG), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub.ModelInfer(kserve_grpc_request(JPEG, SHA.hex()), timeout=60)
    assert HTTP.get(strict.url + "/readyz").status_code == 200


def test_through_redis_the_worker_checks_the_digest(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    settings = load_settings(
        None,
        registry_root=make_registry(tmp_path),
        models=["tiny"],
        queue="redis",
        redis_url=redis_server.url,
        worker_metrics_port=0,
        host="127.0.0.1",
        warmup_runs=1,
        require_image_digest=True,
    )
    with serve_app(create_worker_app(settings)), serve_app(create_app(settings)) as url:
        assert post(url, content=JPEG)[1]["error"] == "digest_required"  # by the API
        status, body = post(url, {"Content-Digest": content_digest(JPEG)}, content=FLIPPED)
        assert (status, body["error"]) == (400, "invalid_image")
        status, body = post(url, {"Content-Digest": content_digest(JPEG)}, content=JPEG)
        assert status == 200 and body["verdict"] == "fail"
