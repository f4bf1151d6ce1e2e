"""A real Prometheus scrapes a running lineinspect (API + worker over a real Redis) and
evaluates every dashboard panel's query and every alert rule without error."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.app import create_app
from service.config import load_settings
from service.registry import Registry
from service.worker_app import create_worker_app
from tests.conftest import defect_image, encode
from tests.support.prometheus import DASHBOARDS, Prometheus, panel_queries
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact

__all__ = ["redis_server"]  # the fixture

DASHBOARD = DASHBOARDS / "lineinspect.json"


@pytest.fixture
def stack(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    """A lineinspect API and one worker on a real Redis, under light steady traffic."""
    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "art"), "tiny", alias="production")
    settings = load_settings(
        None,
        registry_root=reg.root,
        models=["tiny"],
        queue="redis",
        redis_url=redis_server.url,
        warmup_runs=1,
        redis_stats_interval_s=0.2,
        redis_health_ms=200,
    )
    stop = threading.Event()
    with serve_app(create_worker_app(settings)) as worker, serve_app(create_app(settings)) as api:

        def traffic() -> None:
            jpeg, clean = encode(defect_image()), encode(defect_image(box=(0, 0, 0, 0)))
            i = 0
            while not stop.wait(0.05):
                i += 1
                body = b"junk" if i % 25 == 0 else (jpeg if i % 3 else clean)
                httpx.post(
                    api + "/v1/inspect",
                    content=body,
                    timeout=10,
                    headers={"Content-Type": "image/jpeg"},
                    params={"line": f"L{i % 2 + 1}", "camera": f"c{i % 3}"},
                )

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        try:
            yield api, worker
        finally:
            stop.set()
            thread.join(10)


def test_every_dashboard_query_and_alert_evaluates(tmp_path: Path, stack: tuple[str, str]) -> None:
    api, worker = stack
    prom = Prometheus(
        tmp_path / "prom", {"lineinspect-api": api[7:], "lineinspect-worker": worker[7:]}
    )
    try:
        wait_until(lambda: prom.targets_up(2), timeout=60, interval=0.2)
        # rate() over the 10 s window needs a few scrapes of the traffic
        probe = "sum(rate(lineinspect_frames_total[10s])) > 0"
        wait_until(lambda: bool(prom.api("query", query=probe)["result"]), timeout=60, interval=0.2)
        queries = panel_queries(DASHBOARD)
        assert len(queries) >= 20

        def panels_without_data() -> list[str]:
            return prom.without_data(queries)  # a query with an error fails here

        # The API and the worker are scraped at different offsets: wait until every
        # rate() window holds two scrapes of both targets, then require data everywhere.
        with contextlib.suppress(TimeoutError):  # the assertion below names what is missing
            wait_until(lambda: not panels_without_data(), timeout=60, interval=0.5)
        empty = panels_without_data()
        assert not empty, "panels without data:\n" + "\n".join(empty)

        def rules_evaluated() -> list[dict[str, Any]]:
            rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
            return rules if all(r["lastEvaluation"][:4] != "0001" for r in rules) else []

        wait_until(lambda: bool(rules_evaluated()), timeout=30, interval=0.2)
        rules = rules_evaluated()
        assert len(rules) >= 4
        assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    finally:
        prom.stop()
