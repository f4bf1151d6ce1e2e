"""Malformed KServe v2 tensors: each is answered 400 with the v2 error body (HTTP) or
INVALID_ARGUMENT (gRPC), before anything is allocated for it; the service stays ready."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from service.grpc.generated.kserve import grpc_predict_v2_pb2 as kpb
from service.grpc.generated.kserve import grpc_predict_v2_pb2_grpc as kpb_grpc
from service.kserve.http import json_depth
from service.registry import Registry
from tests.support.grpc_app import Served, serve_grpc, settings_for
from tests.support.http import HTTP
from tests.support.tiny_onnx import write_artefact


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("kserve-malformed")
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    with serve_grpc(settings_for(reg.root)) as s:
        yield s


def pixels(**over: Any) -> dict[str, Any]:
    spec = {"name": "image_pixels", "datatype": "UINT8", "shape": [1, 2, 2, 1], "data": [0] * 4}
    return {**spec, **over}


BINARY = {"name": "image_pixels", "datatype": "UINT8", "parameters": {"binary_data_size": 4}}
OVERFLOW_HEAD = json.dumps({"inputs": [{**BINARY, "shape": [2**32, 2**32, 1, 1]}]}).encode()


def nested(depth: int) -> bytes:
    return b'{"inputs":' + b"[" * depth + b"]" * depth + b"}"


# (id, body bytes, extra headers)
CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("uint8-300", json.dumps({"inputs": [pixels(data=[300, 0, 0, 0])]}).encode(), {}),
    ("uint8-negative", json.dumps({"inputs": [pixels(data=[-1, 0, 0, 0])]}).encode(), {}),
    ("uint8-float", json.dumps({"inputs": [pixels(data=[1.5, 0, 0, 0])]}).encode(), {}),
    ("uint8-string", json.dumps({"inputs": [pixels(data=["a", 0, 0, 0])]}).encode(), {}),
    ("uint8-2**70", json.dumps({"inputs": [pixels(data=[2**70, 0, 0, 0])]}).encode(), {}),
    ("uint8-object", json.dumps({"inputs": [pixels(data=[{}, 0, 0, 0])]}).encode(), {}),
    (
        "fp32-nan",
        b'{"inputs":[{"name":"image_tensor","datatype":"FP32","shape":[1],"data":[NaN]}]}',
        {},
    ),
    ("request-params-list", json.dumps({"inputs": [pixels()], "parameters": []}).encode(), {}),
    ("request-params-str", json.dumps({"inputs": [pixels()], "parameters": "x"}).encode(), {}),
    ("input-params-list", json.dumps({"inputs": [pixels(parameters=[1])]}).encode(), {}),
    ("input-params-str", json.dumps({"inputs": [pixels(parameters="x")]}).encode(), {}),
    (
        "output-params-list",
        json.dumps(
            {"inputs": [pixels()], "outputs": [{"name": "count", "parameters": []}]}
        ).encode(),
        {},
    ),
    (
        "output-params-str",
        json.dumps(
            {"inputs": [pixels()], "outputs": [{"name": "count", "parameters": "s"}]}
        ).encode(),
        {},
    ),
    ("output-name-int", json.dumps({"inputs": [pixels()], "outputs": [{"name": 3}]}).encode(), {}),
    ("shape-1e30", json.dumps({"inputs": [pixels(shape=[1e30])]}).encode(), {}),
    ("shape-10**30", json.dumps({"inputs": [pixels(shape=[10**30])]}).encode(), {}),
    ("shape-bool", json.dumps({"inputs": [pixels(shape=[True, 2, 2, 1])]}).encode(), {}),
    (
        "shape-overflow-binary",
        OVERFLOW_HEAD + b"\0" * 4,
        {"Inference-Header-Content-Length": str(len(OVERFLOW_HEAD))},
    ),
    ("nested-900", nested(900), {}),
    ("nested-100000", nested(100_000), {}),
    (
        "nested-data-40",
        json.dumps({"inputs": [pixels(data=["@"])]}).encode().replace(b'"@"', nested(40)),
        {},
    ),
]


@pytest.mark.parametrize(("case", "body", "headers"), CASES, ids=[c[0] for c in CASES])
def test_malformed_json_tensors_get_a_v2_400(
    served: Served, case: str, body: bytes, headers: dict[str, str]
) -> None:
    r = HTTP.post(served.url + "/v2/models/tiny/infer", content=body, headers=headers)
    assert r.status_code == 400, (case, r.text[:200])
    err = r.json()
    assert set(err) == {"error"} and isinstance(err["error"], str) and err["error"]
    assert " at 0x" not in err["error"]
    assert HTTP.get(served.url + "/v2/health/ready").status_code == 200


@pytest.mark.parametrize(
    "shape", [[2**32, 2**32, 1, 1], [2**62, 4], [2**63 - 1, 2**63 - 1], [1, -1, 2, 1]]
)
def test_grpc_model_infer_shape_overflow_is_invalid_argument(
    served: Served, shape: list[int]
) -> None:
    stub = kpb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(served.target))
    raw = kpb.ModelInferRequest(model_name="tiny")
    raw.inputs.add(name="image_pixels", datatype="UINT8", shape=shape)
    raw.raw_input_contents.append(b"\x00" * 4)
    typed = kpb.ModelInferRequest(model_name="tiny")
    typed.inputs.add(name="image_tensor", datatype="FP32", shape=shape).contents.fp32_contents[
        :
    ] = [0.0] * 4
    for req in (raw, typed):
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(req, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, shape
    assert stub.ServerReady(kpb.ServerReadyRequest(), timeout=30).ready


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert json_depth(b'{"a": [[1], {"b": "[[[[{{"}]}') == 3
    assert json_depth(b'"\\"[[[["') == 0
    assert json_depth(b"[" * 5000 + b"]" * 5000) == 5000
    assert json_depth(b"17") == 0
