"""The REST service on a real socket with real ONNX Runtime sessions."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.api.app import create_app
from service.config import load_settings
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.support.http import HTTP
from tests.support.load import inspect_once, under_load
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact

JPEG = {"Content-Type": "image/jpeg"}


def _settings(reg: Registry, **kw: Any):  # type: ignore[no-untyped-def]
    base = {
        "registry_root": reg.root,
        "models": ["tiny"],
        "registry_poll_s": 0.05,
        "warmup_runs": 1,
    }
    return load_settings(None, **{**base, **kw})


@pytest.fixture
def url(tiny_registry: Registry) -> Iterator[str]:
    with serve_app(create_app(_settings(tiny_registry))) as u:  # no tokens (see test_scopes)
        yield u


def metric_samples(url: str) -> dict[str, list[Any]]:
    text = HTTP.get(url + "/metrics").text
    out: dict[str, list[Any]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_inspect_raw_body_returns_record(url: str) -> None:
    img = defect_image(200, 160, (40, 40, 90, 100))
    r = HTTP.post(
        url + "/v1/inspect",
        content=encode(img),
        params={"line": "L1", "frame_id": "f-1"},
        headers={**JPEG, "X-Camera": "c3"},
    )
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["frame_id"] == "f-1" and rec["line"] == "L1" and rec["camera"] == "c3"
    assert rec["model"] == {"name": "tiny", "version": 1, "role": "student"}
    assert rec["verdict"] == "fail"
    assert {d["label"] for d in rec["detections"]} == {"scratch"}
    for d in rec["detections"]:  # boxes in original pixels, inside the bright area (+1 cell)
        x1, y1, x2, y2 = d["box"]
        assert x1 >= 24 and x2 <= 106 and y1 >= 24 and y2 <= 116
    assert set(rec["timing_ms"]) == {"queue", "inference", "total"}
    assert r.headers["x-request-id"]


def test_raw_camera_pixels_get_the_record_of_the_same_image_as_png(url: str) -> None:
    img = defect_image(200, 160)  # grey levels only: Mono8 of it is the same picture
    png = HTTP.post(
        url + "/v1/inspect",
        content=encode(img, "PNG"),
        headers={"Content-Type": "image/png"},
        params={"frame_id": "f"},
    )
    want = {k: v for k, v in png.json().items() if k != "timing_ms"}
    assert want["detections"]
    raw = {"Content-Type": "application/octet-stream"}
    size = {"width": 200, "height": 160}
    for fmt, data in (("Mono8", img[..., 0].tobytes()), ("RGB8", img.tobytes())):
        r = HTTP.post(
            url + "/v1/inspect",
            content=data,
            headers=raw,
            params={"pixel_format": fmt, "frame_id": "f", **size},
        )
        assert r.status_code == 200, r.text
        assert {k: v for k, v in r.json().items() if k != "timing_ms"} == want, fmt
    # Past 640x480 a raw frame is prepared on the decode threads instead of the loop.
    big = defect_image(800, 640, (160, 160, 360, 400))
    png = HTTP.post(
        url + "/v1/inspect",
        content=encode(big, "PNG"),
        headers={"Content-Type": "image/png"},
        params={"frame_id": "f"},
    )
    big_size = {"pixel_format": "Mono8", "width": 800, "height": 640, "frame_id": "f"}
    r = HTTP.post(url + "/v1/inspect", content=big[..., 0].tobytes(), headers=raw, params=big_size)
    assert r.status_code == 200 and r.json()["detections"]
    assert {k: v for k, v in r.json().items() if k != "timing_ms"} == {
        k: v for k, v in png.json().items() if k != "timing_ms"
    }
    short = HTTP.post(
        url + "/v1/inspect",
        content=img[1:, :, 0].tobytes(),
        headers=raw,
        params={"pixel_format": "Mono8", **size},
    )
    assert short.status_code == 400 and "needs 32000 bytes" in short.json()["message"]
    no_size = HTTP.post(
        url + "/v1/inspect", content=b"\0" * 10, headers=raw, params={"pixel_format": "Mono8"}
    )
    assert no_size.status_code == 400 and no_size.json()["error"] == "invalid_input"
    stray = HTTP.post(url + "/v1/inspect", content=encode(img), headers=JPEG, params=size)
    assert stray.status_code == 400


def test_inspect_multipart_and_clean_frame(url: str) -> None:
    clean = encode(defect_image(box=(0, 0, 0, 0)), "PNG")
    r = HTTP.post(url + "/v1/inspect", files={"image": ("part7.png", clean, "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["image"] == "part7.png"
    assert r.json()["verdict"] == "pass" and r.json()["detections"] == []


def test_concurrent_requests_share_batches(url: str) -> None:
    data = encode(defect_image())
    with cf.ThreadPoolExecutor(32) as pool:
        codes = list(
            pool.map(
                lambda _: HTTP.post(url + "/v1/inspect", content=data, headers=JPEG).status_code,
                range(96),
            )
        )
    assert codes == [200] * 96
    s = metric_samples(url)
    count = sum(x.value for x in s["lineinspect_batch_size_count"])
    total = sum(x.value for x in s["lineinspect_batch_size_sum"])
    assert total == 96 and count < 96, "no request shared a batch"


def test_models_endpoints(url: str) -> None:
    models = HTTP.get(url + "/v1/models").json()
    assert models == [{"name": "tiny", "versions": [1, 2], "aliases": {"production": 1}}]
    detail = HTTP.get(url + "/v1/models/tiny").json()
    assert detail["cards"]["2"]["version"] == 2 and detail["serving"] == {"production": 1}
    assert HTTP.get(url + "/v1/models/nope").status_code == 404
    r = HTTP.put(url + "/v1/models/tiny/aliases/production", json={"version": 9})
    assert r.status_code == 404


def test_hot_swap_under_load_fails_nothing(url: str, tiny_registry: Registry) -> None:
    def promote() -> Any:
        return HTTP.put(url + "/v1/models/tiny/aliases/production", json={"version": 2})

    r, answers = under_load(url, promote)
    assert r.status_code == 200 and r.json()["previous"] == 1
    results = [(code, b["model"]["version"], b["detections"][0]["label"]) for code, b in answers]
    assert all(code == 200 for code, _, _ in results)
    # every record names the version that answered, and its output matches that version
    assert all((v, lab) in {(1, "scratch"), (2, "dent")} for _, v, lab in results)
    assert {v for _, v, _ in results[150:]} == {2}  # the PUT returns after the swap
    # an edit on disk (as another replica or the CLI would make) swaps back
    tiny_registry.set_alias("tiny", "production", 1)
    wait_until(lambda: inspect_once(url)[1]["model"]["version"] == 1)


def test_deadline_and_queue_full(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "slow", extra_cost=400), "slow", alias="production")
    settings = _settings(reg, models=["slow"], max_batch=1, queue_size=2, max_delay_ms=0)
    data = encode(defect_image())
    with serve_app(create_app(settings)) as u:
        r = HTTP.post(u + "/v1/inspect", content=data, headers=JPEG, params={"deadline_ms": 0.01})
        assert r.status_code == 504 and r.json()["error"] == "deadline_exceeded"
        with cf.ThreadPoolExecutor(24) as pool:
            rs = list(
                pool.map(
                    lambda _: HTTP.post(u + "/v1/inspect", content=data, headers=JPEG, timeout=60),
                    range(48),
                )
            )
        codes = [r.status_code for r in rs]
        assert 429 in codes and 200 in codes and set(codes) <= {200, 429}
        assert all(r.headers["retry-after"] for r in rs if r.status_code == 429)
        s = metric_samples(u)
        reasons = {x.labels["reason"]: x.value for x in s["lineinspect_dropped_frames_total"]}
        assert reasons["deadline"] >= 1 and reasons["queue_full"] == codes.count(429)
        assert HTTP.get(u + "/readyz").status_code == 200


def test_readiness_false_until_warm(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "slow", extra_cost=300), "slow", alias="production")
    settings = _settings(reg, models=["slow"], warmup_runs=40, max_batch=32)
    with serve_app(create_app(settings), ready_path=None) as u:
        assert HTTP.get(u + "/healthz").status_code == 200
        first = HTTP.get(u + "/readyz")
        assert first.status_code == 503 and first.json() == {"ready": False, "models": []}
        r = HTTP.post(u + "/v1/inspect", content=encode(defect_image()), headers=JPEG)
        assert r.status_code == 503 and r.json()["error"] == "not_ready"
        wait_until(lambda: HTTP.get(u + "/readyz").status_code == 200, timeout=120)


def test_metrics_exposition_parses(url: str) -> None:
    HTTP.post(
        url + "/v1/inspect", content=encode(defect_image()), headers=JPEG, params={"line": "L1"}
    )
    HTTP.post(url + "/v1/inspect", content=b"junk", headers=JPEG)
    s = metric_samples(url)
    frames = [x for x in s["lineinspect_frames_total"] if x.labels["line"] == "L1"]
    assert frames and frames[0].labels["verdict"] == "fail" and frames[0].labels["version"] == "1"
    assert any(
        x.labels == {"line": "L1", "label": "scratch"} for x in s["lineinspect_defects_total"]
    )
    assert any(
        x.labels["endpoint"] == "/v1/inspect"
        for x in s["lineinspect_request_duration_seconds_bucket"]
    )
    assert any(x.labels["status"] == "400" for x in s["lineinspect_errors_total"])
    assert any(x.labels["alias"] == "production" for x in s["lineinspect_model_info"])
    for name in (
        "lineinspect_queue_wait_seconds_bucket",
        "lineinspect_inference_duration_seconds_bucket",
        "lineinspect_in_flight_requests",
        "lineinspect_queue_depth",
    ):
        assert name in s, name


def test_promoting_a_broken_version_is_refused_and_changes_nothing(
    url: str, tiny_registry: Registry, tmp_path: Path
) -> None:
    art = write_artefact(tmp_path / "broken")
    (art / "model.onnx").write_bytes(b"definitely not onnx")
    tiny_registry.register(art, "tiny")  # v3: registers (card is fine) but cannot load
    r = HTTP.put(url + "/v1/models/tiny/aliases/production", json={"version": 3})
    assert r.status_code == 422 and r.json()["error"] == "registry_error"
    assert tiny_registry.aliases("tiny") == {"production": 1}
    ok = HTTP.post(url + "/v1/inspect", content=encode(defect_image()), headers=JPEG)
    assert ok.status_code == 200 and ok.json()["model"]["version"] == 1


def test_openapi_documents_the_api(url: str) -> None:
    spec = HTTP.get(url + "/openapi.json").json()
    post = spec["paths"]["/v1/inspect"]["post"]
    assert {"image/jpeg", "image/png", "multipart/form-data"} <= set(post["requestBody"]["content"])
    assert {"200", "400", "413", "415", "429", "503", "504"} <= set(post["responses"])
    assert spec["components"]["schemas"]["DetectionRecord"]["examples"]
    assert {
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/aliases/{alias}",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(spec["paths"])
    assert HTTP.get(url + "/docs").status_code == 200
