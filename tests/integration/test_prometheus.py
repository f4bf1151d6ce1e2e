"""A real Prometheus scrapes a running lineinspect (API + worker over a real Redis) and
evaluates every dashboard panel's query and every alert rule without error."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.api.app import create_app
from service.config import load_settings
from service.registry import Registry
from service.worker_app import create_worker_app
from tests.conftest import defect_image, encode
from tests.support.redis_server import RedisServer, free_port, redis_server
from tests.support.servers import serve_app, wait_until
from tests.support.tiny_onnx import write_artefact

__all__ = ["redis_server"]  # the fixture

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "lineinspect.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
#: Grafana's template variables, as Grafana would expand them for "All" and a 1 s scrape.
GRAFANA_VARS = {"$__rate_interval": "10s", "$line": ".*"}


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with the Grafana variables expanded) of every panel target."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out.append((panel["title"], expr))
    return out


class Prometheus:
    """``prometheus`` on a free loopback port with temp storage and a generated config."""

    def __init__(self, workdir: Path, targets: dict[str, str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not found: run `make tools` (Debian's prometheus package)")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        workdir.mkdir(parents=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url[7:]}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=60)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
        try:
            return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, path: str, **params: str) -> Any:
        body = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


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

        def targets_up() -> bool:
            active = prom.api("targets")["activeTargets"]
            return len(active) == 2 and all(t["health"] == "up" for t in active)

        wait_until(targets_up, timeout=60, interval=0.2)
        # rate() over the 10 s window needs a few scrapes of the traffic
        probe = "sum(rate(lineinspect_frames_total[10s])) > 0"
        wait_until(lambda: bool(prom.api("query", query=probe)["result"]), timeout=60, interval=0.2)
        queries = panel_queries()
        assert len(queries) >= 20

        def panels_without_data() -> list[str]:
            empty = []
            for title, expr in queries:
                data = prom.api("query", query=expr)  # asserts status == success (no error)
                if not data["result"]:
                    empty.append(f"{title}: {expr}")
            return empty

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
