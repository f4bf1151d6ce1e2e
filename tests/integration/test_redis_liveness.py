"""No lost frames with the default settings: heartbeats, poison frames, Redis death.

Real redis-server, real API, real ``lineinspect worker infer`` processes. The queue,
deadline and Redis timing settings are the defaults everywhere here; only the warm-up
and the ONNX thread count are set, to keep start-up short on small machines.
"""

from __future__ import annotations

import concurrent.futures as cf
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from service.api.app import create_app
from service.config import load_settings
from service.queue.streams import QueueKeys
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.support.http import HTTP
from tests.support.redis_server import RedisServer, free_port, redis_server
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact
from tests.support.workers import WorkerProcess, run_workers

__all__ = ["redis_server"]  # the fixture

KEYS = QueueKeys("lineinspect", "inference")
#: Not queue settings: a short warm-up and one ONNX thread per session.
LEAN = {"warmup_runs": 1, "intra_op_threads": 1, "log_level": "INFO"}
IMAGE = encode(defect_image())


def registry(tmp_path: Path, **model: Any) -> Path:
    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "art", **model), "tiny", alias="production")
    return reg.root


def api(reg: Path, redis: RedisServer) -> Any:
    settings = load_settings(
        None, registry_root=reg, models=["tiny"], queue="redis", redis_url=redis.url
    )
    return create_app(settings)


def post(url: str, frame_id: str | None = None, **params: Any) -> tuple[httpx.Response, str]:
    fid = frame_id or uuid.uuid4().hex
    r = httpx.post(
        url + "/v1/inspect",
        content=IMAGE,
        headers={"Content-Type": "image/jpeg"},
        params={"frame_id": fid, **params},
        timeout=60,
    )
    return r, fid


def metric(url: str, name: str) -> float:
    text = HTTP.get(url + "/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def held_by(redis: RedisServer, consumer: str) -> int:
    info = redis.client().xpending(KEYS.frames, KEYS.group)
    return sum(c["pending"] for c in info["consumers"] if c["name"] == consumer.encode())


def test_sigkilled_worker_loses_no_frame_with_default_settings(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """One of two workers is SIGKILLed under 16-way load: its frames are claimed by
    liveness well inside the default 2 s deadline, so all 300 requests answer 200."""
    reg = registry(tmp_path, extra_cost=20)
    with (
        run_workers(2, reg, redis_server.url, tmp_path, **LEAN) as (victim, survivor),
        serve_app(api(reg, redis_server)) as url,
        cf.ThreadPoolExecutor(16) as pool,
    ):
        futures = [pool.submit(post, url) for _ in range(300)]

        held = 0

        def frozen_holding_frames() -> bool:
            nonlocal held
            victim.proc.send_signal(signal.SIGSTOP)  # frozen: it cannot ack after the check
            held = held_by(redis_server, "w0")
            if sum(f.done() for f in futures) >= 60 and held > 0:
                return True
            victim.proc.send_signal(signal.SIGCONT)
            return False

        wait_until(frozen_holding_frames, timeout=120, interval=0.01)
        victim.kill()  # still frozen since the check: it never answers the frames it held
        res = [f.result() for f in futures]
        codes = [r.status_code for r, _ in res]
        bad = [r.text for r, _ in res if r.status_code != 200]
        assert codes.count(200) == 300, (codes.count(200), bad[:3])
        assert all(r.json()["frame_id"] == fid for r, fid in res)
        assert metric(survivor.url, "lineinspect_queue_reclaimed_frames_total") >= held > 0
        rids = [f[b"rid"] for _, f in redis_server.client().xrange(KEYS.results)]
        assert len(rids) == 300 == len(set(rids))


def test_poison_frame_goes_to_the_dead_letter_stream(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A frame whose every holder dies is delivered redis_dead_letter_after (3) times,
    then set aside in <prefix>:dead and answered with an error, never redelivered."""
    reg = registry(tmp_path, imgsz=384, extra_cost=20)  # ~0.5 s a frame: the kill wins
    client = redis_server.client()
    with (
        run_workers(4, reg, redis_server.url, tmp_path, **LEAN) as workers,
        serve_app(api(reg, redis_server)) as url,
        cf.ThreadPoolExecutor(1) as pool,
    ):
        by_name = {w.name: w for w in workers}
        answer = pool.submit(post, url, None, deadline_ms=120_000)
        killed: list[str] = []

        def kill_each_holder() -> bool:
            for row in client.xpending_range(KEYS.frames, KEYS.group, "-", "+", 10):
                holder = by_name[row["consumer"].decode()]
                if row["times_delivered"] <= 3 and holder.proc.poll() is None:
                    holder.kill()  # the frame "kills" whichever worker it is delivered to
                    killed.append(holder.name)
            return answer.done()

        wait_until(kill_each_holder, timeout=60, interval=0.005)
        r, fid = answer.result()
        assert r.status_code == 422 and r.json()["error"] == "dead_lettered", r.text
        assert len(killed) == 3 == len(set(killed))
        (last,) = [w for w in workers if w.proc.poll() is None]
        dead = client.xrange(KEYS.dead_letters)
        assert len(dead) == 1 and dead[0][1][b"frame_id"].decode() == fid
        assert dead[0][1][b"deliveries"] == b"3" and dead[0][1][b"data"] == IMAGE
        assert metric(last.url, "lineinspect_queue_dead_letter_frames_total") == 1
        assert client.xlen(KEYS.frames) == 0
        r, _ = post(url)  # the queue still serves
        assert r.status_code == 200


def test_frames_in_flight_get_a_fast_503_when_redis_dies(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Redis is SIGKILLed with frames in flight (deadline 30 s): each is answered 503 at
    once, and a retry with the same frame id after Redis returns is answered once."""
    reg = registry(tmp_path, imgsz=256, extra_cost=20)  # ~0.1 s a frame
    client = redis_server.client()
    with (
        run_workers(1, reg, redis_server.url, tmp_path, **LEAN) as (worker,),
        serve_app(api(reg, redis_server)) as url,
        cf.ThreadPoolExecutor(8) as pool,
    ):
        futures = [pool.submit(post, url, None, deadline_ms=30_000) for _ in range(8)]
        wait_until(lambda: client.xlen(KEYS.frames) >= 4, timeout=30, interval=0.005)
        redis_server.kill()
        killed_at = time.monotonic()
        res = [f.result() for f in futures]
        waited = time.monotonic() - killed_at
        lost = [(r, fid) for r, fid in res if r.status_code != 200]
        assert lost and all(r.status_code == 503 for r, _ in lost), [r.text for r, _ in lost]
        assert {r.json()["error"] for r, _ in lost} == {"unavailable"}
        in_flight = [r for r, _ in lost if "retry with the same frame id" in r.json()["message"]]
        assert len(in_flight) >= 4  # those queued at the kill; later ones were refused
        assert waited < 3, f"in-flight frames waited {waited:.1f} s for their answer"
        redis_server.start()
        wait_until(lambda: HTTP.get(url + "/readyz").status_code == 200, timeout=30)
        wait_until(worker.is_ready, timeout=30)
        retried = [post(url, fid, deadline_ms=30_000) for _, fid in lost]
        assert [r.status_code for r, _ in retried] == [200] * len(lost)
        assert [r.json()["frame_id"] for r, _ in retried] == [fid for _, fid in lost]
        records = [f[b"record"].decode() for _, f in redis_server.client().xrange(KEYS.results)]
        for _, fid in lost:
            assert sum(fid in rec for rec in records) == 1, "a retried frame was answered twice"


def test_second_worker_on_the_same_metrics_port_fails_at_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two workers on one host with the same metrics port: the second exits before it
    warms a model or joins the group, and its message names the port and the option."""
    reg = registry(tmp_path)
    port = free_port()
    first = WorkerProcess("w0", reg, redis_server.url, tmp_path, port=port, **LEAN)
    try:
        wait_until(first.is_ready, timeout=90, interval=0.05)
        second = WorkerProcess("w1", reg, redis_server.url, tmp_path, port=port, **LEAN)
        try:
            assert second.proc.wait(60) != 0
        finally:
            second.stop()
        log = second.log_path.read_text()
        assert f":{port}" in log and "--metrics-port" in log, log
        assert "startup complete" not in log.lower() and "Traceback" not in log, log
        client = redis_server.client()
        assert client.keys(KEYS.alive("*")) == [KEYS.alive("w0").encode()]  # w1 never joined
        consumers = client.xinfo_consumers(KEYS.frames, KEYS.group)
        assert b"w1" not in [c["name"] for c in consumers]
        assert first.is_ready()
    finally:
        first.stop()
