"""KServe v2 with the unchanged tritonclient (gRPC and HTTP) against a real server."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from models.processing import decode_image, letterbox
from models.processing.letterbox import letterbox_boxes
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.support.grpc_app import Served, serve_grpc, settings_for
from tests.support.http import HTTP

IMAGES = [encode(defect_image()), encode(defect_image(120, 240, (10, 100, 60, 180)), "PNG")]
CLASSES = ["scratch", "dent"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.support.tiny_onnx import write_artefact

    tmp = tmp_path_factory.mktemp("kserve")
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    reg.register(write_artefact(tmp / "a2", hot_class=1), "tiny")
    with serve_grpc(settings_for(reg.root, models=["tiny", "tiny:2"])) as s:
        yield s


def rest_records(served: Served, model: str = "tiny") -> list[dict[str, Any]]:
    return [
        HTTP.post(
            served.url + "/v1/inspect",
            content=img,
            headers={"Content-Type": "image/png"},
            params={"model": model},
        ).json()
        for img in IMAGES
    ]


def assert_same_as_rest(
    result: Any, records: list[dict[str, Any]], input_boxes: bool = False
) -> None:
    boxes, scores = result.as_numpy("boxes"), result.as_numpy("scores")
    class_ids, count = result.as_numpy("class_ids"), result.as_numpy("count")
    assert count.dtype == np.int32 and class_ids.dtype == np.int64 and boxes.dtype == np.float32
    assert list(count) == [len(r["detections"]) for r in records]
    assert boxes.shape == (len(records), max(count), 4)
    for i, rec in enumerate(records):
        dets = rec["detections"]
        want = np.array([d["box"] for d in dets], np.float32).reshape(-1, 4)
        if input_boxes:  # the FP32 path answers in model-input pixels
            info = letterbox(decode_image(IMAGES[i]), 64)[1]
            want = letterbox_boxes(want, info)
        assert np.allclose(boxes[i, : count[i]], want, atol=0.02)
        assert np.allclose(scores[i, : count[i]], [d["score"] for d in dets], atol=1e-3)
        assert [CLASSES[c] for c in class_ids[i, : count[i]]] == [d["label"] for d in dets]
        assert (class_ids[i, count[i] :] == -1).all()


def bytes_input(module: Any, images: list[bytes] = IMAGES) -> Any:
    inp = module.InferInput("image_bytes", [len(images)], "BYTES")
    inp.set_data_from_numpy(np.array(images, dtype=np.object_))
    return inp


def test_tritonclient_grpc_infer_matches_rest(served: Served) -> None:
    client = tgrpc.InferenceServerClient(served.target)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("tiny") and client.is_model_ready("tiny", "2")
    assert not client.is_model_ready("nope")
    result = client.infer("tiny", [bytes_input(tgrpc)], request_id="r-1")
    assert result.get_response().id == "r-1" and result.get_response().model_version == "1"
    assert_same_as_rest(result, rest_records(served))
    v2 = client.infer("tiny", [bytes_input(tgrpc)], model_version="2")
    assert_same_as_rest(v2, rest_records(served, "tiny:2"))
    only = client.infer("tiny", [bytes_input(tgrpc)], outputs=[tgrpc.InferRequestedOutput("count")])
    assert [o.name for o in only.get_response().outputs] == ["count"]


def test_tritonclient_http_infer_matches_rest_binary_and_json(served: Served) -> None:
    client = thttp.InferenceServerClient(served.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("tiny")
    records = rest_records(served)
    assert_same_as_rest(client.infer("tiny", [bytes_input(thttp)]), records)  # binary both ways
    outputs = [
        thttp.InferRequestedOutput(n, binary_data=False)
        for n in ("boxes", "scores", "class_ids", "count")
    ]
    as_json = client.infer("tiny", [bytes_input(thttp)], outputs=outputs, model_version="1")
    assert "data" in as_json.get_response()["outputs"][0]
    assert_same_as_rest(as_json, records)
    gz = client.infer("tiny", [bytes_input(thttp)], request_compression_algorithm="gzip")
    assert_same_as_rest(gz, records)


@pytest.mark.parametrize("module", [tgrpc, thttp], ids=["grpc", "http"])
def test_fp32_preprocessed_input(served: Served, module: Any) -> None:
    target = served.target if module is tgrpc else served.url.removeprefix("http://")
    client = module.InferenceServerClient(target)
    batch = np.stack([letterbox(decode_image(b), 64)[0].transpose(2, 0, 1) for b in IMAGES])
    inp = module.InferInput("image_tensor", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch.astype(np.float32) / 255.0)
    assert_same_as_rest(client.infer("tiny", [inp]), rest_records(served), input_boxes=True)


@pytest.mark.parametrize("module", [tgrpc, thttp], ids=["grpc", "http"])
def test_uint8_pixel_input_matches_rest(served: Served, module: Any) -> None:
    """Raw pixels the Triton way: UINT8 [N,H,W,C], greyscale or RGB, any size."""
    target = served.target if module is tgrpc else served.url.removeprefix("http://")
    client = module.InferenceServerClient(target)
    img = defect_image()  # grey levels only: C=1 and C=3 are the same picture
    records = [
        HTTP.post(
            served.url + "/v1/inspect",
            content=encode(img, "PNG"),
            headers={"Content-Type": "image/png"},
        ).json()
    ] * 2
    for batch in (np.stack([img, img]), np.stack([img[..., :1], img[..., :1]])):
        inp = module.InferInput("image_pixels", list(batch.shape), "UINT8")
        inp.set_data_from_numpy(batch)
        assert_same_as_rest(client.infer("tiny", [inp]), records)
    bad = module.InferInput("image_pixels", [1, 160, 200, 2], "UINT8")
    bad.set_data_from_numpy(np.zeros((1, 160, 200, 2), np.uint8))
    with pytest.raises(InferenceServerException, match="UINT8 of shape"):
        client.infer("tiny", [bad])


def test_metadata_config_and_server_endpoints(served: Served) -> None:
    g = tgrpc.InferenceServerClient(served.target)
    h = thttp.InferenceServerClient(served.url.removeprefix("http://"))
    meta = h.get_model_metadata("tiny")
    assert meta["versions"] == ["1", "2"] and meta["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in meta["inputs"]] == ["image_bytes", "image_tensor", "image_pixels"]
    assert meta["inputs"][1]["shape"] == [-1, 3, 64, 64]
    assert meta["inputs"][2]["datatype"] == "UINT8"
    assert [o["name"] for o in meta["outputs"]] == ["boxes", "scores", "class_ids", "count"]
    gmeta = g.get_model_metadata("tiny", as_json=True)
    assert [o["name"] for o in gmeta["outputs"]] == ["boxes", "scores", "class_ids", "count"]
    cfg = g.get_model_config("tiny", as_json=True)["config"]
    assert cfg["name"] == "tiny" and cfg["input"][0]["data_type"] == "TYPE_STRING"
    assert h.get_model_config("tiny")["output"][3] == {
        "name": "count",
        "data_type": "TYPE_INT32",
        "dims": [-1],
    }
    assert g.get_server_metadata(as_json=True)["name"] == "lineinspect"
    assert "binary_tensor_data" in h.get_server_metadata()["extensions"]
    assert HTTP.get(served.url + "/v2/health/live").status_code == 200
    assert HTTP.get(served.url + "/v2/models/tiny/versions/2").json()["name"] == "tiny"
    r = HTTP.get(served.url + "/v2/models/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    with pytest.raises(InferenceServerException) as err:
        g.get_model_metadata("nope")
    assert err.value.status() == "StatusCode.NOT_FOUND"


def test_bad_requests_are_clean_errors(served: Served) -> None:
    g = tgrpc.InferenceServerClient(served.target)
    h = thttp.InferenceServerClient(served.url.removeprefix("http://"))
    for client, module, invalid in ((g, tgrpc, "StatusCode.INVALID_ARGUMENT"), (h, thttp, "400")):
        with pytest.raises(InferenceServerException) as err:
            client.infer("tiny", [bytes_input(module, [IMAGES[0], b"junk"])])
        assert err.value.status() == invalid and "decodable" in err.value.message()
        wrong = module.InferInput("pixels", [1], "BYTES")
        wrong.set_data_from_numpy(np.array([IMAGES[0]], dtype=np.object_))
        with pytest.raises(InferenceServerException) as err:
            client.infer("tiny", [wrong])
        assert err.value.status() == invalid
        assert_same_as_rest(client.infer("tiny", [bytes_input(module)]), rest_records(served))
    r = HTTP.post(served.url + "/v2/models/tiny/infer", content=b"{not json")
    assert r.status_code == 400 and "error" in r.json()
    r = HTTP.post(
        served.url + "/v2/models/tiny/infer",
        content=b'{"inputs": []}\x00\x01',
        headers={"Inference-Header-Content-Length": "14"},
    )
    assert r.status_code == 400 and "belong to no input" in r.json()["error"]


def test_model_stream_infer_answers_in_order(served: Served) -> None:
    client = tgrpc.InferenceServerClient(served.target)
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i in range(12):
            images = [b"junk"] if i == 5 else IMAGES
            client.async_stream_infer("tiny", [bytes_input(tgrpc, images)], request_id=str(i))
        got = [answers.get(timeout=30) for _ in range(12)]
    finally:
        client.stop_stream()
    records = rest_records(served)
    for i, (result, error) in enumerate(got):
        if i == 5:
            assert result is None and "decodable" in str(error)
            continue
        assert error is None and result.get_response().id == str(i)
        assert_same_as_rest(result, records)


def test_statistics_count_every_frame_of_every_edge_by_version(tmp_path: Path) -> None:
    """Triton's statistics extension, read by tritonclient and perf_analyzer: frames from
    KServe and from /v1/inspect, answered and failed, per version, the same over both
    protocols."""
    from tests.support.tiny_onnx import write_artefact

    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "a1"), "tiny", alias="production")
    reg.register(write_artefact(tmp_path / "a2", hot_class=1), "tiny")
    with serve_grpc(settings_for(reg.root, models=["tiny", "tiny:2"])) as served:
        http = thttp.InferenceServerClient(served.url.removeprefix("http://"))
        grpc_client = tgrpc.InferenceServerClient(served.target)
        before = http.get_inference_statistics("tiny")["model_stats"]
        assert [(s["version"], s["inference_count"], s["execution_count"]) for s in before] == [
            ("1", 0, 0),
            ("2", 0, 0),
        ]
        grpc_client.infer("tiny", [bytes_input(tgrpc)])  # two frames on version 1
        rest_records(served, "tiny:2")  # two frames on version 2
        bad = HTTP.post(
            served.url + "/v1/inspect",
            content=b"\xff\xd8 not a jpeg",
            headers={"Content-Type": "image/jpeg"},
        )
        assert bad.status_code == 400
        v1, v2 = http.get_inference_statistics("tiny")["model_stats"]
        for v, answered, failed in ((v1, 2, 1), (v2, 2, 0)):
            s = v["inference_stats"]
            assert v["inference_count"] == s["success"]["count"] == answered
            assert s["fail"]["count"] == failed
            assert 1 <= v["execution_count"] <= answered and v["last_inference"] > 0
            for part in ("queue", "compute_input", "compute_infer", "compute_output"):
                assert s[part]["count"] == answered, part
            assert s["compute_infer"]["ns"] > 0 and s["success"]["ns"] >= s["compute_infer"]["ns"]
            batches = v["batch_stats"]
            assert sum(b["compute_infer"]["count"] for b in batches) == v["execution_count"]
            assert sum(b["batch_size"] * b["compute_infer"]["count"] for b in batches) == answered
        over_grpc = grpc_client.get_inference_statistics("tiny", "2", as_json=True)["model_stats"]
        assert len(over_grpc) == 1 and over_grpc[0]["version"] == "2"
        assert int(over_grpc[0]["inference_count"]) == 2
        assert (
            int(over_grpc[0]["inference_stats"]["compute_infer"]["ns"])
            == (v2["inference_stats"]["compute_infer"]["ns"])
        )
        every = http.get_inference_statistics()["model_stats"]
        assert [(s["name"], s["version"]) for s in every] == [("tiny", "1"), ("tiny", "2")]
        assert "statistics" in http.get_server_metadata()["extensions"]
        for call in (
            lambda: http.get_inference_statistics("nope"),
            lambda: grpc_client.get_inference_statistics("nope"),
        ):
            with pytest.raises(InferenceServerException, match="nope"):
                call()
