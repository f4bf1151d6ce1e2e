"""Shadow serving on real servers with tiny models: comparisons counted under 16-way
load with every production answer 200 and production p99 bounded against shadow off
(measured here, same machine), the REST summary, a disagreement reaching capture, and
drop-and-count when the shadow queue is full."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import statistics
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from service.api.app import create_app
from service.config import load_settings
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.grpc.generated.lineinspect.v1 import inspection_pb2_grpc as pb_grpc
from service.registry import Registry
from service.store import Store
from service.store.schema import Sample
from service.worker_app import create_worker_app
from tests.conftest import defect_image, encode
from tests.support.grpc_app import serve_grpc, settings_for
from tests.support.http import HTTP
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact

__all__ = ["redis_server"]  # the fixture
N_FRAMES = 320


def _frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        if i % 2:  # plain dark frames: both versions pass
            out.append(encode(rng.integers(0, 30, (160, 200, 3), dtype=np.uint8), "PNG"))
        else:  # a bright defect: production says scratch, the candidate dent
            x, y = 10 + 5 * (i % 6), 10 + 6 * (i % 5)
            out.append(encode(defect_image(box=(x, y, x + 40, y + 50)), "PNG"))
    return out


def _metric(url: str, name: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for fam in text_string_to_metric_families(HTTP.get(f"{url}/metrics").text):
        for s in fam.samples:
            if s.name == name:
                out[tuple(s.labels[k] for k in sorted(s.labels))] = s.value
    return out


def _picked(url: str) -> float:
    """Frames the shadow compared or dropped so far."""
    compared = _metric(url, "lineinspect_shadow_frames_total").values()
    return sum(compared) + sum(_metric(url, "lineinspect_shadow_dropped_total").values())


def _load(url: str, frames: list[bytes], workers: int = 16) -> list[float]:
    """Send every frame with ``workers`` concurrent clients; latencies in seconds."""

    def send(data: bytes) -> float:
        t0 = time.perf_counter()
        r = HTTP.post(f"{url}/v1/inspect", content=data, headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        return time.perf_counter() - t0

    with cf.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(send, frames))


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


def _settings(reg: Registry, tmp_path: Path, **kw: Any) -> Any:
    base: dict[str, Any] = {
        "registry_root": reg.root,
        "models": ["tiny"],
        "warmup_runs": 1,
        "data_root": tmp_path / "data",
        "capture_samplers": [],
        "score_threshold": 0.5,
    }
    return load_settings(None, **{**base, **kw})


def test_comparisons_under_load_never_fail_or_slow_production(
    tiny_registry: Registry, tmp_path: Path
) -> None:
    tiny_registry.set_alias("tiny", "candidate", 2)
    frames = _frames(N_FRAMES)
    p99: dict[str, list[float]] = {"off": [], "on": []}
    for mode in ("off", "on") * 3:  # alternate: machine drift hits both alike
        settings = _settings(
            tiny_registry, tmp_path, shadow_enabled=mode == "on", shadow_fraction=0.1
        )
        app: FastAPI = create_app(settings)
        with serve_app(app) as url:
            _load(url, frames[:32])  # warm-up
            p99[mode].append(_p99(_load(url, frames)))
            if mode == "off":
                assert app.state.shadow is None
                assert HTTP.get(f"{url}/v1/models/tiny/shadow").status_code == 404
                continue
            wait_until(lambda: app.state.shadow.pending == 0)  # noqa: B023
            compared = _metric(url, "lineinspect_shadow_frames_total")
            dropped = _metric(url, "lineinspect_shadow_dropped_total")
            r = HTTP.get(f"{url}/v1/models/tiny/shadow")
            missing = HTTP.get(f"{url}/v1/models/nope/shadow")
        assert r.status_code == 200, r.text
        body = r.json()
        n = sum(compared.values())
        assert n >= 5, (compared, dropped)  # comparisons happened under load
        assert body["compared"] == n and body["dropped"] == sum(dropped.values())
        assert (body["name"], body["production_version"], body["shadow_version"]) == ("tiny", 1, 2)
        # same verdicts (every class fails a part), never the same detections on a defect
        assert compared[("tiny", "pass_to_fail")] == compared[("tiny", "fail_to_pass")] == 0
        assert body["agreement"] == 1.0 and body["precision"] == body["recall"] == 0.0
        assert body["class_rate_delta"]["dent"] > 0 > body["class_rate_delta"]["scratch"]
        assert missing.status_code == 404
        assert set(missing.json()) == {"error", "message", "request_id"}
    off, on = min(p99["off"]), min(p99["on"])
    # Shadow at 10 % (as the benchmark) on 2 cores at closed-loop saturation: production
    # p99 within 1.5x + 10 ms of shadow off measured here (docs/benchmarks.md).
    assert on <= 1.5 * off + 0.010, p99


def test_a_disagreement_reaches_capture(tiny_registry: Registry, tmp_path: Path) -> None:
    tiny_registry.set_alias("tiny", "shadow", 2)
    sampler = {"name": "disagree", "kind": "disagreement", "dataset": "c-shadow"}
    settings = _settings(
        tiny_registry,
        tmp_path,
        shadow_fraction=1.0,
        capture_samplers=[sampler],
        capture_min_free_bytes=0,
    )
    app: FastAPI = create_app(settings)
    frames = _frames(4)  # two defects (disagree: scratch vs dent), two dark (agree)
    with serve_app(app) as url:
        records = []
        for i, f in enumerate(frames):  # the next once the shadow is done: never busy
            png = {"Content-Type": "image/png"}
            records.append(HTTP.post(f"{url}/v1/inspect", content=f, headers=png).json())
            wait_until(lambda: _picked(url) == i + 1)  # noqa: B023
        assert sum(_metric(url, "lineinspect_shadow_frames_total").values()) == 4
        wait_until(lambda: _metric(url, "lineinspect_captured_frames_total") == {("disagree",): 2})
        app.state.capture.writer.drain()
    st = Store(tmp_path / "data")
    try:
        with st.transaction() as s:
            rows = list(s.scalars(select(Sample).where(Sample.sampler == "disagree")))
            assert sorted(r.frame_id for r in rows) == sorted(
                records[i]["frame_id"] for i in (0, 2)
            )
            for row in rows:
                original = next(r for r in records if r["frame_id"] == row.frame_id)
                assert row.model_ref == "tiny:1" and row.prediction == original["detections"]
                shadow = row.record["shadow"]
                assert shadow["model"]["version"] == 2 and shadow["verdict"] == "fail"
                assert {d["label"] for d in shadow["detections"]} == {"dent"}
    finally:
        st.close()


def test_full_queue_drops_and_counts(tiny_registry: Registry, tmp_path: Path) -> None:
    # a slow shadow version and a queue of one: most picked frames find it full
    tiny_registry.register(write_artefact(tmp_path / "slow", extra_cost=300), "tiny")
    tiny_registry.set_alias("tiny", "shadow", 3)
    settings = _settings(
        tiny_registry, tmp_path, shadow_fraction=1.0, shadow_queue_size=1, max_batch=32
    )
    app: FastAPI = create_app(settings)
    frames = _frames(64)
    with serve_app(app) as url:
        _load(url, frames)  # every answer 200 (asserted in _load)
        wait_until(lambda: app.state.shadow.pending == 0)
        dropped = _metric(url, "lineinspect_shadow_dropped_total")
        compared = sum(_metric(url, "lineinspect_shadow_frames_total").values())
        body = HTTP.get(f"{url}/v1/models/tiny/shadow").json()
    assert dropped[("tiny", "queue_full")] > 0, dropped
    assert compared + sum(dropped.values()) == len(frames)
    assert body["compared"] == compared and body["dropped"] == sum(dropped.values())


def test_inference_workers_shadow_in_the_redis_topology(
    tiny_registry: Registry, tmp_path: Path, redis_server: RedisServer
) -> None:
    tiny_registry.set_alias("tiny", "candidate", 2)
    settings = _settings(
        tiny_registry,
        tmp_path,
        shadow_fraction=1.0,
        queue="redis",
        redis_url=redis_server.url,
        worker_metrics_port=0,
        redis_health_ms=100,
        redis_block_ms=200,
    )
    worker_app = create_worker_app(settings)
    with serve_app(worker_app) as worker, serve_app(create_app(settings)) as url:
        for i, frame in enumerate(_frames(8)):  # the next once the shadow is done: never busy
            _load(url, [frame], workers=1)
            wait_until(lambda: _picked(worker) == i + 1)  # noqa: B023
        compared = _metric(worker, "lineinspect_shadow_frames_total")
        body = HTTP.get(f"{worker}/v1/models/tiny/shadow").json()
        on_api = HTTP.get(f"{url}/v1/models/tiny/shadow")
    # same verdicts (every class fails), the defects' detections differ (scratch vs dent)
    assert compared == {
        ("tiny", "agree"): 8.0,
        ("tiny", "fail_to_pass"): 0,
        ("tiny", "pass_to_fail"): 0,
    }
    assert (body["compared"], body["shadow_version"], body["recall"]) == (8, 2, 0.0)
    assert on_api.status_code == 404  # the API has no local models in this topology


def test_every_edge_is_shadowed(tiny_registry: Registry, tmp_path: Path) -> None:
    """gRPC unary and stream, KServe v2 BYTES over HTTP, and REST all reach the shadow."""
    tiny_registry.set_alias("tiny", "candidate", 2)
    settings = settings_for(
        tiny_registry.root,
        shadow_fraction=1.0,
        capture_samplers=[],
        data_root=tmp_path / "data",
        default_deadline_ms=20_000,
    )
    image = encode(defect_image())
    with serve_grpc(settings) as served:

        def shadowed(picked: int) -> float:
            """Wait until ``picked`` frames were compared or dropped; the compared ones."""
            wait_until(lambda: _picked(served.url) == picked)
            return sum(_metric(served.url, "lineinspect_shadow_frames_total").values())

        stub = pb_grpc.InspectionServiceStub(grpc.insecure_channel(served.target))
        one = stub.Inspect(pb.InspectRequest(image=image, frame_id="u-0"))
        assert one.status == pb.FRAME_STATUS_INSPECTED
        assert shadowed(1) == 1  # nothing else in flight: never busy
        frames = (pb.InspectRequest(image=image, frame_id=f"s-{i}") for i in range(6))
        answers = list(stub.StreamInspect(frames))
        streamed = sum(a.status == pb.FRAME_STATUS_INSPECTED for a in answers)
        after_stream = shadowed(1 + streamed)  # pipelined: some may find production busy
        assert after_stream > 1
        body = {"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1]}]}
        body["inputs"][0]["data"] = [{"b64": base64.b64encode(image).decode()}]
        assert HTTP.post(f"{served.url}/v2/models/tiny/infer", json=body).status_code == 200
        assert shadowed(2 + streamed) == after_stream + 1
        jpeg = {"Content-Type": "image/jpeg"}
        assert HTTP.post(f"{served.url}/v1/inspect", content=image, headers=jpeg).status_code == 200
        assert shadowed(3 + streamed) == after_stream + 2
        summary = HTTP.get(f"{served.url}/v1/models/tiny/shadow").json()
    assert summary["compared"] == after_stream + 2 and summary["recall"] == 0.0  # scratch/dent
