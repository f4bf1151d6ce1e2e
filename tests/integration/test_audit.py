"""The audit trail on a real server: every frame of a mixed REST / gRPC / KServe load has
exactly one row that says what answered it; retries add none; the query routes; with
``audit: required`` a broken database answers 503, with ``best_effort`` 200 and drops
counted; both recover when the database does."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tritonclient.http as thttp
from fastapi import FastAPI

from service.api.app import create_app
from service.config import Settings
from service.grpc.convert import record_from_proto
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.grpc.generated.lineinspect.v1 import inspection_pb2_grpc as pb_grpc
from service.registry import Registry
from service.store.db import SQLITE_FILE
from tests.conftest import defect_image, encode
from tests.integration.test_rest import metric_samples
from tests.support.grpc_app import serve_grpc, settings_for
from tests.support.http import HTTP
from tests.support.servers import serve_app, wait_until

DEFECT = encode(defect_image())
PLAIN = encode(np.full((160, 200, 3), 20, np.uint8))
IMAGES = (DEFECT, PLAIN)
JPEG = {"Content-Type": "image/jpeg"}
THRESHOLDS = {"scratch": 0.4, "dent": 0.6}


def audit_settings(registry: Registry, tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "data_root": tmp_path / "data",
        "capture_samplers": [],
        "audit_flush_ms": 20,
        "default_deadline_ms": 60_000,
        "score_threshold": 0.4,
        "class_thresholds": {"dent": 0.6},
    }
    return settings_for(registry.root, **{**base, **kw})


def metric(url: str, name: str, **labels: str) -> float:
    rows = metric_samples(url).get(name, [])
    return sum(s.value for s in rows if all(s.labels.get(k) == v for k, v in labels.items()))


def every_row(url: str, **params: Any) -> list[dict[str, Any]]:
    """All rows matching ``params``, through the paged route (200 a page)."""
    out: list[dict[str, Any]] = []
    while True:
        page = HTTP.get(f"{url}/v1/audit", params={**params, "offset": len(out), "limit": 200})
        assert page.status_code == 200, page.text
        body = page.json()
        out += body["items"]
        if len(out) >= body["total"]:
            assert len(out) == body["total"]
            return out


def test_every_frame_of_a_mixed_load_has_exactly_one_row(
    tiny_registry: Registry, tmp_path: Path
) -> None:
    sent: dict[str, tuple[str, bytes, dict[str, Any]]] = {}  # frame id -> edge, image, record
    lock = threading.Lock()

    def keep(edge: str, image: bytes, record: dict[str, Any]) -> None:
        with lock:
            assert record["frame_id"] not in sent
            sent[record["frame_id"]] = (edge, image, record)

    with serve_grpc(audit_settings(tiny_registry, tmp_path)) as served:
        url = served.url
        stub = pb_grpc.InspectionServiceStub(grpc.insecure_channel(served.target))

        def rest(i: int) -> None:
            image = IMAGES[i % 2]
            params = {"frame_id": f"rest-{i}", "line": f"L{i % 3}", "camera": f"c{i % 4}"}
            r = HTTP.post(f"{url}/v1/inspect", content=image, headers=JPEG, params=params)
            assert r.status_code == 200, r.text
            keep("rest", image, r.json())

        def unary(i: int) -> None:
            image = IMAGES[i % 2]
            req = pb.InspectRequest(image=image, frame_id=f"unary-{i}", line=f"L{i % 3}")
            resp = stub.Inspect(req, timeout=60)
            assert resp.status == pb.FRAME_STATUS_INSPECTED
            keep("grpc", image, record_from_proto(resp.record).model_dump(mode="json"))

        def stream(camera: str, n: int) -> int:
            reqs = (
                pb.InspectRequest(image=IMAGES[i % 2], camera=camera, frame_id=f"{camera}-{i}")
                for i in range(n)
            )
            answered = 0
            for resp in stub.StreamInspect(reqs, timeout=120):
                if resp.status == pb.FRAME_STATUS_INSPECTED:  # the others were skipped
                    i = int(resp.frame_id.rsplit("-", 1)[1])
                    keep("grpc", IMAGES[i % 2], record_from_proto(resp.record).model_dump())
                    answered += 1
            return answered

        def kserve(i: int) -> None:
            client = thttp.InferenceServerClient(url.removeprefix("http://"))
            inp = thttp.InferInput("image_bytes", [2], "BYTES")
            inp.set_data_from_numpy(np.array(IMAGES, dtype=np.object_))
            client.infer("tiny", [inp], request_id=f"ks-{i}")
            for j, image in enumerate(IMAGES):  # the record is the REST one: rebuilt below
                keep("kserve", image, {"frame_id": f"ks-{i}:{j}"})

        with cf.ThreadPoolExecutor(16) as pool:
            streams = [pool.submit(stream, f"s{k}", 50) for k in range(2)]
            jobs = [pool.submit(rest, i) for i in range(250)]
            jobs += [pool.submit(unary, i) for i in range(140)]
            jobs += [pool.submit(kserve, i) for i in range(5)]
            for job in jobs:
                job.result()
            streamed = sum(s.result() for s in streams)
        assert len(sent) == 250 + 140 + 10 + streamed and streamed >= 2  # of 500 frames sent
        # retries of answered frames (same frame ids) are answered and add no row
        for i in range(0, 40, 2):
            params = {"frame_id": f"rest-{i}", "line": f"L{i % 3}", "camera": f"c{i % 4}"}
            again = HTTP.post(f"{url}/v1/inspect", content=IMAGES[0], headers=JPEG, params=params)
            assert again.status_code == 200
        wait_until(lambda: metric(url, "lineinspect_audit_rows_total") >= len(sent))
        wait_until(lambda: metric(url, "lineinspect_audit_queue_depth") == 0)
        rows = every_row(url)
        assert metric(url, "lineinspect_audit_rows_total") == len(sent) == len(rows)
        assert metric(url, "lineinspect_audit_dropped_total") == 0
        by_id = {r["frame_id"]: r for r in rows}
        assert sorted(by_id) == sorted(sent)  # exactly one row per answered frame
        for fid, (edge, image, record) in sent.items():
            got = by_id[fid]
            assert got["edge"] == edge, fid
            assert got["image_sha256"] == hashlib.sha256(image).hexdigest(), fid
            assert got["thresholds"] == THRESHOLDS
            if edge == "kserve":
                continue
            dets = record["detections"]
            assert got["verdict"] == record["verdict"], fid
            assert got["line"] == record["line"] and got["camera"] == record["camera"]
            assert got["model"] == {"name": "tiny", "version": 1}
            want: dict[str, int] = {}
            for d in dets:
                want[d["label"]] = want.get(d["label"], 0) + 1
            assert got["counts"] == want
            assert got["max_score"] == (max(d["score"] for d in dets) if dets else None)
        assert {r["verdict"] for r in rows} == {"pass", "fail"}
        # the query routes, against what was sent
        l1_fail = [
            f
            for f, (_, _, r) in sent.items()
            if r.get("line") == "L1" and r.get("verdict") == "fail"
        ]
        got_ids = [r["frame_id"] for r in every_row(url, line="L1", verdict="fail")]
        assert sorted(got_ids) == sorted(l1_fail) and l1_fail
        assert len(every_row(url, camera="c2")) == sum(1 for i in range(250) if i % 4 == 2)
        assert every_row(url, model="tiny:2") == [] and len(every_row(url, model="tiny")) == len(
            rows
        )
        times = [r["time"] for r in rows]
        assert times == sorted(times, reverse=True)  # newest first
        mid = sorted(times)[len(times) // 2]
        older = every_row(url, to=mid)
        newer = every_row(url, **{"from": mid})
        assert len(older) + len(newer) == len(rows) and older and newer
        one = HTTP.get(f"{url}/v1/audit/rest-3")
        assert one.status_code == 200 and one.json() == by_id["rest-3"]
        missing = HTTP.get(f"{url}/v1/audit/never-sent")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        assert HTTP.get(f"{url}/v1/audit", params={"verdict": "maybe"}).status_code == 422
        assert HTTP.get(f"{url}/v1/audit", params={"limit": 0}).status_code == 422
        assert HTTP.get(f"{url}/v1/audit", params={"model": "tiny:x"}).status_code == 400
        summary = HTTP.get(f"{url}/v1/lines", params={"window_s": 3600}).json()
        per_line = {x["line"]: x for x in summary["lines"]}
        l1 = [r for r in rows if r["line"] == "L1"]
        assert per_line["L1"]["frames"] == len(l1)
        assert per_line["L1"]["fail_rate"] == round(
            sum(r["verdict"] == "fail" for r in l1) / len(l1), 4
        )
        assert per_line["L1"]["top_classes"][0]["label"] == "scratch"
        assert sum(x["frames"] for x in summary["lines"]) == len(rows)


def break_audit_table(data_root: Path) -> None:
    with sqlite3.connect(data_root / SQLITE_FILE, timeout=30) as db:
        db.execute("ALTER TABLE audit_rows RENAME TO audit_rows_away")


def repair_audit_table(data_root: Path) -> None:
    with sqlite3.connect(data_root / SQLITE_FILE, timeout=30) as db:
        db.execute("ALTER TABLE audit_rows_away RENAME TO audit_rows")


def post(url: str, fid: str) -> int:
    return HTTP.post(
        f"{url}/v1/inspect", content=DEFECT, headers=JPEG, params={"frame_id": fid}
    ).status_code


@contextmanager
def served(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    app = create_app(settings)
    with serve_app(app) as url:
        yield url, app


def test_required_audit_answers_503_while_the_database_fails(
    tiny_registry: Registry, tmp_path: Path
) -> None:
    settings = audit_settings(tiny_registry, tmp_path, audit="required", audit_queue_size=8)
    codes: dict[str, int] = {}
    n = 0

    def send() -> int:
        nonlocal n
        n += 1
        codes[f"f{n}"] = post(url, f"f{n}")
        return codes[f"f{n}"]

    with serve_grpc(settings) as srv:
        url = srv.url
        assert [send() for _ in range(5)] == [200] * 5
        break_audit_table(settings.data_root)
        wait_until(lambda: send() == 503)  # as soon as the writer finds the database failing
        r = HTTP.post(f"{url}/v1/inspect", content=DEFECT, headers=JPEG)
        assert r.status_code == 503 and r.json()["error"] == "audit_unavailable"
        stub = pb_grpc.InspectionServiceStub(grpc.insecure_channel(srv.target))
        try:
            stub.Inspect(pb.InspectRequest(image=DEFECT), timeout=30)
            raise AssertionError("a frame that cannot be audited was answered")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
        assert metric(url, "lineinspect_audit_dropped_total", reason="db_failing") >= 2
        repair_audit_table(settings.data_root)
        wait_until(lambda: send() == 200)
        assert [send() for _ in range(3)] == [200] * 3
        wait_until(lambda: metric(url, "lineinspect_audit_queue_depth") == 0)
        wait_until(lambda: len(every_row(url)) == sum(c == 200 for c in codes.values()))
        audited = {r["frame_id"] for r in every_row(url)}
    # every frame answered 200 is audited (those queued before the failure was known were
    # retried until the database came back); no refused frame is
    assert audited == {f for f, c in codes.items() if c == 200}
    assert set(codes.values()) == {200, 503}


def test_best_effort_audit_keeps_answering_and_counts_the_drops(
    tiny_registry: Registry, tmp_path: Path
) -> None:
    settings = audit_settings(tiny_registry, tmp_path, audit_queue_size=4, audit_batch_size=2)
    with served(settings) as (url, _app):
        assert post(url, "before") == 200
        wait_until(lambda: metric(url, "lineinspect_audit_rows_total") == 1)
        break_audit_table(settings.data_root)
        codes = [post(url, f"during-{i}") for i in range(30)]
        assert codes == [200] * 30
        assert metric(url, "lineinspect_audit_dropped_total", reason="queue_full") > 0
        assert metric(url, "lineinspect_audit_dropped_total", reason="db_failing") == 0
        repair_audit_table(settings.data_root)
        wait_until(lambda: metric(url, "lineinspect_audit_queue_depth") == 0)
        assert post(url, "after") == 200
        wait_until(lambda: "after" in {r["frame_id"] for r in every_row(url)})
        dropped = metric(url, "lineinspect_audit_dropped_total", reason="queue_full")
        assert len(every_row(url)) + dropped == 32
        assert metric(url, "lineinspect_audit_rows_total") == len(every_row(url))


def test_audit_off_writes_nothing(tiny_registry: Registry, tmp_path: Path) -> None:
    with served(audit_settings(tiny_registry, tmp_path, audit="off")) as (url, app):
        assert post(url, "x") == 200
        assert app.state.audit is None
        assert HTTP.get(f"{url}/v1/audit").json()["total"] == 0
