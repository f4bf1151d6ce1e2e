"""Exactly one audit row per frame in the Redis topology: real redis-server, two API
instances on one store, real worker processes, a real redelivery (a frozen worker's
frames are claimed and answered by another; woken, it delivers them again) and client
retries of answered frames through the other API instance."""

from __future__ import annotations

import concurrent.futures as cf
import signal
from pathlib import Path

import httpx

from service.api.app import create_app
from tests.conftest import defect_image, encode
from tests.integration.test_audit import every_row, metric
from tests.integration.test_redis_queue import KEYS, WORKER_ENV, api_settings, make_registry, post
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import serve_app, wait_until
from tests.support.workers import run_workers

__all__ = ["redis_server"]  # the fixture

FRAMES = 120


def test_a_redelivered_or_retried_frame_is_audited_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    reg = make_registry(tmp_path, extra_cost=20)
    audit = {"data_root": tmp_path / "data", "capture_samplers": [], "audit_flush_ms": 20}
    first = create_app(api_settings(reg, redis_server, **audit))
    other = create_app(api_settings(reg, redis_server, **audit))
    client = redis_server.client()

    def held_by(name: str) -> int:
        info = client.xpending(KEYS.frames, KEYS.group)
        return sum(c["pending"] for c in info["consumers"] if c["name"] == name.encode())

    with (
        run_workers(2, reg, redis_server.url, tmp_path, **WORKER_ENV) as (victim, survivor),
        serve_app(first) as url,
        serve_app(other) as url2,
        cf.ThreadPoolExecutor(16) as pool,
    ):
        futures = [pool.submit(post, url, 60_000) for _ in range(FRAMES)]
        held = 0

        def frozen_holding_frames() -> bool:
            nonlocal held
            victim.proc.send_signal(signal.SIGSTOP)  # frozen: it cannot ack after the check
            held = held_by("w0")
            if sum(f.done() for f in futures) >= 10 and held > 0:
                return True
            victim.proc.send_signal(signal.SIGCONT)
            return False

        wait_until(frozen_holding_frames, timeout=120, interval=0.01)
        res = [f.result() for f in futures]  # the survivor claims and answers the held frames
        assert [r.status_code for r, _, _ in res] == [200] * FRAMES
        victim.proc.send_signal(signal.SIGCONT)  # woken, it delivers what it held: again
        wait_until(lambda: metric(victim.url, "lineinspect_queue_duplicate_frames_total") > 0)
        assert metric(survivor.url, "lineinspect_queue_reclaimed_frames_total") > 0
        image = encode(defect_image())
        for r, _, fid in res[:30]:  # clients retry answered frames on the other instance
            again = httpx.post(
                url2 + "/v1/inspect",
                content=image,
                headers={"Content-Type": "image/jpeg"},
                params={"frame_id": fid, "deadline_ms": 20_000},
                timeout=60,
            )
            assert again.status_code == 200
            assert again.json()["detections"] == r.json()["detections"]
        for u in (url, url2):
            wait_until(lambda u=u: metric(u, "lineinspect_audit_queue_depth") == 0)
        wait_until(lambda: metric(url, "lineinspect_audit_rows_total") == FRAMES)
        first.state.audit.writer.drain()
        other.state.audit.writer.drain()
        rows = every_row(url)
        assert metric(url2, "lineinspect_audit_rows_total") == 0  # its 30 were duplicates
        assert metric(url2, "lineinspect_audit_dropped_total") == 0
    assert held > 0
    ids = [r["frame_id"] for r in rows]
    assert len(ids) == FRAMES == len(set(ids))
    assert set(ids) == {fid for _, _, fid in res}
    assert {r["edge"] for r in rows} == {"rest"}
