"""The Redis-stream queue end to end: real redis-server, real API, real worker processes."""

from __future__ import annotations

import concurrent.futures as cf
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.api.app import create_app
from service.config import Settings, load_settings
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.grpc.generated.lineinspect.v1 import inspection_pb2_grpc as pb_grpc
from service.queue.streams import DELIVER_LUA, QueueKeys
from service.registry import Registry
from service.worker_app import create_worker_app
from tests.conftest import defect_image, encode
from tests.support.grpc_app import serve_grpc, settings_for
from tests.support.http import HTTP
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact
from tests.support.workers import run_workers

__all__ = ["redis_server"]  # the fixture

JPEG = {"Content-Type": "image/jpeg"}
KEYS = QueueKeys("lineinspect", "inference")
FAST = {"redis_health_ms": 100, "redis_timeout_ms": 300, "redis_block_ms": 200}
WORKER_ENV = {
    "warmup_runs": 1,
    "max_batch": 4,
    "intra_op_threads": 1,
    "log_level": "WARNING",
    "redis_reclaim_idle_ms": 400,
    **FAST,
}


def make_registry(tmp_path: Path, extra_cost: int = 0) -> Path:
    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(
        write_artefact(tmp_path / "art", extra_cost=extra_cost), "tiny", alias="production"
    )
    return reg.root


def api_settings(registry: Path, redis: RedisServer, **kw: Any) -> Settings:
    base = {
        "registry_root": registry,
        "models": ["tiny"],
        "queue": "redis",
        "redis_url": redis.url,
        **FAST,
    }
    return load_settings(None, **{**base, **kw})


def samples(url: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for fam in text_string_to_metric_families(HTTP.get(url + "/metrics").text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def total(url: str, name: str, **labels: str) -> float:
    rows = samples(url).get(name, [])
    return sum(s.value for s in rows if all(s.labels.get(k) == v for k, v in labels.items()))


def post(url: str, deadline_ms: float = 20_000, **params: Any) -> tuple[httpx.Response, float, str]:
    fid = uuid.uuid4().hex
    t0 = time.perf_counter()
    r = httpx.post(
        url + "/v1/inspect",
        content=encode(defect_image()),
        headers=JPEG,
        timeout=60,
        params={"frame_id": fid, "deadline_ms": deadline_ms, **params},
    )
    return r, time.perf_counter() - t0, fid


def result_rids(redis: RedisServer) -> list[bytes]:
    return [fields[b"rid"] for _id, fields in redis.client().xrange(KEYS.results)]


@pytest.fixture
def api(tmp_path: Path, redis_server: RedisServer) -> Iterator[str]:
    with serve_app(create_app(api_settings(make_registry(tmp_path), redis_server))) as url:
        yield url


def test_two_workers_answer_every_frame(tmp_path: Path, redis_server: RedisServer) -> None:
    reg = make_registry(tmp_path, extra_cost=20)
    # Nobody dies here: a long reclaim idle keeps a slow (loaded) worker's frames its own,
    # so the per-worker counts below add up to exactly 80.
    env = {**WORKER_ENV, "redis_reclaim_idle_ms": 30_000}
    with (
        run_workers(2, reg, redis_server.url, tmp_path, **env) as workers,
        serve_app(create_app(api_settings(reg, redis_server))) as url,
    ):
        lines = ["L1", "L2"]
        with cf.ThreadPoolExecutor(16) as pool:
            res = list(
                pool.map(lambda i: post(url, line=lines[i % 2], camera=f"c{i % 3}"), range(80))
            )
        assert [r.status_code for r, _, _ in res] == [200] * 80, res[0][0].text
        for r, _, fid in res:
            rec = r.json()
            assert rec["frame_id"] == fid and rec["verdict"] == "fail"
            assert rec["model"] == {"name": "tiny", "version": 1, "role": "student"}
            assert {d["label"] for d in rec["detections"]} == {"scratch"}
        per_worker = [total(w.url, "lineinspect_frames_total") for w in workers]
        assert sum(per_worker) == 80 and min(per_worker) > 0, per_worker
        assert all(total(w.url, "lineinspect_batch_size_count") > 0 for w in workers)
        rids = result_rids(redis_server)
        assert len(rids) == 80 == len(set(rids))  # the audit trail: one record per frame
        r = redis_server.client()
        assert r.xlen(KEYS.frames) == 0 and r.xpending(KEYS.frames, KEYS.group)["pending"] == 0
        s = samples(workers[0].url)
        for name in (
            "lineinspect_queue_length",
            "lineinspect_queue_lag",
            "lineinspect_queue_pending",
            "lineinspect_queue_reclaimed_frames_total",
            "lineinspect_redis_up",
        ):
            assert name in s, name
        api_metrics = samples(url)
        assert any(
            x.labels["endpoint"] == "/v1/inspect"
            for x in api_metrics["lineinspect_request_duration_seconds_bucket"]
        )
        assert api_metrics["lineinspect_redis_up"][0].value == 1


def test_worker_killed_under_load_loses_nothing(tmp_path: Path, redis_server: RedisServer) -> None:
    """A worker dies holding frames mid-load; a replacement reclaims them and every request
    is answered once.

    The victim is the only consumer until it is killed: with a second live worker the two
    steal each other's slow frames (reclaim idle < batch time here), so whether the victim
    holds anything at the kill became a matter of timing, and the test flaked both ways.
    """
    reg = make_registry(tmp_path, extra_cost=120)
    client = redis_server.client()

    def pending_of(name: str) -> int:
        info = client.xpending(KEYS.frames, KEYS.group)
        return sum(c["pending"] for c in info["consumers"] if c["name"] == name.encode())

    with (
        serve_app(create_app(api_settings(reg, redis_server))) as url,
        cf.ThreadPoolExecutor(16) as pool,
    ):
        with run_workers(1, reg, redis_server.url, tmp_path, **WORKER_ENV) as (victim,):
            futures = [pool.submit(post, url, 60_000) for _ in range(96)]

            def frozen_holding_frames() -> bool:
                # Freeze before reading: a running victim could ack between read and kill.
                victim.proc.send_signal(signal.SIGSTOP)
                if sum(f.done() for f in futures) >= 8 and pending_of("w0") > 0:
                    return True
                victim.proc.send_signal(signal.SIGCONT)
                return False

            wait_until(frozen_holding_frames, timeout=60)
            held = pending_of("w0")
            victim.kill()
        assert held > 0 and sum(f.done() for f in futures) < 96
        with run_workers(1, reg, redis_server.url, tmp_path, first=1, **WORKER_ENV) as (survivor,):
            res = [f.result() for f in futures]
            codes = [r.status_code for r, _, _ in res]
            assert codes == [200] * 96, [r.text for r, _, _ in res if r.status_code != 200][:3]
            assert all(r.json()["frame_id"] == fid for r, _, fid in res)
            assert total(survivor.url, "lineinspect_queue_reclaimed_frames_total") >= held
            rids = result_rids(redis_server)
            assert len(rids) == 96 == len(set(rids))
            wait_until(lambda: client.xlen(KEYS.frames) == 0)


def test_redis_restart_under_load(tmp_path: Path, redis_server: RedisServer) -> None:
    reg = make_registry(tmp_path)
    log: list[tuple[float, int, float, str, httpx.Response]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            t = time.monotonic()
            r, spent, fid = post(url, 3000)
            log.append((t, r.status_code, spent, fid, r))

    def successes_after(t: float) -> int:
        return sum(1 for s, code, *_ in list(log) if s > t and code == 200)

    with (
        run_workers(1, reg, redis_server.url, tmp_path, **WORKER_ENV) as (worker,),
        serve_app(create_app(api_settings(reg, redis_server))) as url,
    ):
        threads = [threading.Thread(target=load) for _ in range(4)]
        for th in threads:
            th.start()
        try:
            wait_until(lambda: successes_after(0) >= 20)
            redis_server.stop(save=True)
            wait_until(lambda: HTTP.get(url + "/readyz").status_code == 503, timeout=5)
            down_since = time.monotonic()
            wait_until(lambda: sum(1 for s, *_ in list(log) if s > down_since) >= 20)
            up_at = time.monotonic()
            redis_server.start()
            wait_until(lambda: HTTP.get(url + "/readyz").status_code == 200, timeout=10)
            wait_until(worker.is_ready, timeout=10)
            wait_until(lambda: successes_after(up_at) >= 20, timeout=30)
        finally:
            stop.set()
            for th in threads:
                th.join(60)
    assert {code for _, code, *_ in log} <= {200, 503, 504}
    during = [
        (code, spent, r) for s, code, spent, _, r in log if down_since < s and s + spent < up_at
    ]
    assert during and all(code == 503 for code, _, _ in during)
    assert max(spent for _, spent, _ in during) < 0.5, "Redis down must fail fast"
    assert {r.json()["error"] for _, _, r in during} == {"unavailable"}
    ok = [(fid, r.json()) for _, code, _, fid, r in log if code == 200]
    assert all(rec["frame_id"] == fid for fid, rec in ok)
    rids = result_rids(redis_server)
    assert len(rids) == len(set(rids)), "a frame was answered twice"


def test_queue_full_and_deadline_without_workers(tmp_path: Path, redis_server: RedisServer) -> None:
    reg = make_registry(tmp_path)
    settings = api_settings(reg, redis_server, redis_stream_maxlen=3)
    client = redis_server.client()
    with serve_app(create_app(settings)) as url, cf.ThreadPoolExecutor(4) as pool:
        r, spent, _ = post(url, deadline_ms=300)  # no worker: the API gives up at the deadline
        assert r.status_code == 504 and r.json()["error"] == "deadline_exceeded" and spent < 2
        waiting = [pool.submit(post, url, 30_000) for _ in range(2)]
        wait_until(lambda: client.xlen(KEYS.frames) == 3)
        r, spent, _ = post(url)
        assert r.status_code == 429 and r.json()["error"] == "queue_full" and spent < 0.5
        assert int(r.headers["retry-after"]) >= 1
        worker_settings = load_settings(
            None,
            **{
                **settings.model_dump(),
                **WORKER_ENV,
                "worker_metrics_port": 0,
                "host": "127.0.0.1",
            },
        )
        with serve_app(create_worker_app(worker_settings)) as worker:
            assert [f.result()[0].status_code for f in waiting] == [200, 200]
            wait_until(lambda: client.xlen(KEYS.frames) == 0)  # the expired one is dropped too
            assert total(worker, "lineinspect_dropped_frames_total", reason="expired") == 1
            assert total(worker, "lineinspect_frames_total") == 2
        assert total(url, "lineinspect_dropped_frames_total", reason="queue_full") == 1
        assert total(url, "lineinspect_dropped_frames_total", reason="deadline") == 1


def test_results_stream_is_bounded(tmp_path: Path, redis_server: RedisServer) -> None:
    reg = make_registry(tmp_path)
    settings = api_settings(
        reg,
        redis_server,
        redis_results_maxlen=5,
        worker_metrics_port=0,
        **{k: v for k, v in WORKER_ENV.items() if k != "log_level"},
    )
    with serve_app(create_worker_app(settings)), serve_app(create_app(settings)) as url:
        last = [post(url)[2] for _ in range(12)][-1]
    entries = redis_server.client().xrange(KEYS.results)
    assert len(entries) == 5
    assert entries[-1][1][b"record"].decode().count(last) == 1


def test_delivery_is_idempotent(redis_server: RedisServer) -> None:
    """A redelivered frame or a retry of it (same done marker) is audited once; every
    requester gets the first answer."""
    r = redis_server.client()
    deliver = r.register_script(DELIVER_LUA)
    r.xgroup_create(KEYS.frames, KEYS.group, id="0", mkstream=True)
    answers = []
    for n, (rid, payload) in enumerate([("rid-1", '{"ok": 1}'), ("rid-2", '{"ok": 2}')]):
        keys = [KEYS.frames, KEYS.done("frame-1"), KEYS.replies(f"api-{n}"), KEYS.results]
        entry = r.xadd(KEYS.frames, {"rid": rid})
        r.xreadgroup(KEYS.group, "w", {KEYS.frames: ">"})
        args = [KEYS.group, entry, rid, 60_000, payload, 100, 60_000, 10, '{"r": 1}']
        answers.append(deliver(keys=keys, args=args))
    assert answers == [1, 0]
    for n, rid in enumerate(["rid-1", "rid-2"]):
        ((_, reply),) = r.xrange(KEYS.replies(f"api-{n}"))
        assert reply == {b"rid": rid.encode(), b"reply": b'{"ok": 1}'}
    assert r.xlen(KEYS.results) == 1
    assert r.xlen(KEYS.frames) == 0 and r.xpending(KEYS.frames, KEYS.group)["pending"] == 0


def test_redis_down_at_start_then_recovers(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")  # not started yet
    settings = api_settings(make_registry(tmp_path), redis)
    try:
        with serve_app(create_app(settings), ready_path=None) as url:
            assert HTTP.get(url + "/readyz").status_code == 503
            r, spent, _ = post(url)
            assert r.status_code == 503 and r.json()["error"] == "unavailable" and spent < 0.5
            redis.start()
            wait_until(lambda: HTTP.get(url + "/readyz").status_code == 200, timeout=10)
    finally:
        redis.kill()


def test_grpc_frames_go_through_the_redis_queue(tmp_path: Path, redis_server: RedisServer) -> None:
    """The compose stack's API runs gRPC with queue=redis: camera streams reach the workers."""
    reg = make_registry(tmp_path)
    settings = settings_for(
        reg, queue="redis", redis_url=redis_server.url, default_deadline_ms=20_000, **FAST
    )
    with (
        run_workers(1, reg, redis_server.url, tmp_path, **WORKER_ENV) as (worker,),
        serve_grpc(settings) as served,
    ):
        stub = pb_grpc.InspectionServiceStub(grpc.insecure_channel(served.target))
        image = encode(defect_image())
        one = stub.Inspect(pb.InspectRequest(image=image, camera="c0", frame_id="u-0"))
        assert one.status == pb.FRAME_STATUS_INSPECTED and one.record.detections
        frames = (pb.InspectRequest(image=image, camera="c1", frame_id=f"s-{i}") for i in range(12))
        answers = list(stub.StreamInspect(frames))
        assert [a.frame_id for a in answers] == [f"s-{i}" for i in range(12)]
        assert {a.status for a in answers} <= {pb.FRAME_STATUS_INSPECTED, pb.FRAME_STATUS_SKIPPED}
        assert answers[-1].status == pb.FRAME_STATUS_INSPECTED
        inspected = 1 + sum(a.status == pb.FRAME_STATUS_INSPECTED for a in answers)
        wait_until(lambda: total(worker.url, "lineinspect_frames_total") == inspected)
        assert len(result_rids(redis_server)) == inspected
        # The API's v2 statistics count the answered frames; the batches ran in the worker.
        stats = HTTP.get(served.url + "/v2/models/tiny/versions/1/stats").json()["model_stats"]
        assert stats[0]["inference_count"] == inspected and stats[0]["execution_count"] == 0
        assert stats[0]["inference_stats"]["compute_infer"]["count"] == inspected
