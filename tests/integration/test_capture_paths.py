"""Capture on every path: gRPC (encoded and raw camera frames) and the API side of the
Redis queue, whose limits are shared through Redis."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import grpc
import numpy as np
from sqlalchemy import select

from service.api.app import create_app
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.grpc.generated.lineinspect.v1 import inspection_pb2_grpc as pb_grpc
from service.registry import Registry
from service.store import Store
from service.store.blobs import sha256_of
from service.store.schema import Sample
from tests.conftest import defect_image, encode
from tests.integration.test_capture import _metric
from tests.integration.test_redis_queue import WORKER_ENV, api_settings, make_registry
from tests.support.grpc_app import serve_grpc, settings_for
from tests.support.http import HTTP
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import serve_app
from tests.support.workers import run_workers

__all__ = ["redis_server"]  # the fixture


def _unique_defects(n: int) -> list[np.ndarray]:
    return [defect_image(box=(10 + i, 20, 60 + 2 * i, 90)) for i in range(n)]


def _rows(root: Path) -> list[Sample]:
    st = Store(root)
    try:
        with st.transaction() as s:
            return list(s.scalars(select(Sample)))
    finally:
        st.close()


def test_grpc_frames_are_captured_encoded_and_raw(tiny_registry: Registry, tmp_path: Path) -> None:
    samplers = [{"name": "hot", "kind": "classes", "classes": ["scratch"], "dataset": "g"}]
    settings = settings_for(
        tiny_registry.root,
        data_root=tmp_path / "data",
        capture_samplers=samplers,
        capture_min_free_bytes=0,
    )
    images = _unique_defects(6)
    with serve_grpc(settings) as served:
        stub = pb_grpc.InspectionServiceStub(grpc.insecure_channel(served.target))
        answers = []
        for i, img in enumerate(images[:3]):
            req = pb.InspectRequest(image=encode(img, "PNG"), encoding="png", frame_id=f"e{i}")
            answers.append(stub.Inspect(req))
        for i, img in enumerate(images[3:]):
            h, w = img.shape[:2]
            raw = pb.InspectRequest(
                image=img.tobytes(), encoding="RGB8", width=w, height=h, frame_id=f"r{i}"
            )
            answers.append(stub.Inspect(raw))
    # leaving the server stopped the writer, which first writes what is queued
    rows = {r.frame_id: r for r in _rows(tmp_path / "data")}
    assert set(rows) == {"e0", "e1", "e2", "r0", "r1", "r2"}
    for i in range(3):
        assert rows[f"e{i}"].sha256 == sha256_of(encode(images[i], "PNG"))
        raw_row = rows[f"r{i}"]
        assert raw_row.media_type == "image/png" and (raw_row.width, raw_row.height) == (200, 160)
    assert all(r.record and r.record["detections"] for r in rows.values())
    assert len(answers) == 6


def test_redis_path_captures_with_limits_shared_in_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    reg = make_registry(tmp_path)
    samplers = [{"name": "all", "kind": "random", "fraction": 1.0, "per_day": 4, "dataset": "q"}]
    settings = api_settings(
        reg,
        redis_server,
        data_root=tmp_path / "data",
        capture_samplers=samplers,
        capture_min_free_bytes=0,
    )
    app = create_app(settings)
    frames = [encode(img) for img in _unique_defects(10)]
    with run_workers(1, reg, redis_server.url, tmp_path, **WORKER_ENV), serve_app(app) as url:

        def send(data: bytes) -> int:
            r = HTTP.post(url + "/v1/inspect", content=data, headers={"Content-Type": "image/jpeg"})
            return r.status_code

        with cf.ThreadPoolExecutor(16) as pool:
            assert list(pool.map(send, frames)) == [200] * 10
        app.state.capture.writer.drain()
        assert _metric(url, "lineinspect_captured_frames_total")[("all",)] == 4
        assert _metric(url, "lineinspect_capture_dropped_frames_total")[("all", "limit")] == 6
    assert len(_rows(tmp_path / "data")) == 4
    keys = [k.decode() for k in redis_server.client().keys("lineinspect:capture:bucket:*")]
    assert keys == ["lineinspect:capture:bucket:all:86400"]
