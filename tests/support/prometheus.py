"""A real ``prometheus`` for tests, and the PromQL of a Grafana dashboard's panels.

Used by tests/integration/test_prometheus.py (the main dashboard and the alert rules)
and tests/integration/test_learning_dashboard.py (the learning-loop dashboard).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.redis_server import free_port
from tests.support.servers import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
#: Grafana's template variables, as Grafana would expand them for "All" and a 1 s scrape.
GRAFANA_VARS = {"$__rate_interval": "10s", "$line": ".*"}


def panel_queries(
    dashboard: Path, variables: Mapping[str, str] = GRAFANA_VARS
) -> list[tuple[str, str]]:
    """(panel title, PromQL with the Grafana variables expanded) of every panel target."""
    dash = json.loads(dashboard.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in variables.items():
                expr = expr.replace(var, value)
            out.append((panel["title"], expr))
    return out


class Prometheus:
    """``prometheus`` on a free loopback port with temp storage and a generated config
    scraping ``targets`` (job name → host:port) every second, with the alert rules."""

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
        """``/api/v1/<path>``'s data; asserts the call succeeded (a bad query fails here)."""
        body = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def targets_up(self, n: int) -> bool:
        """Whether ``n`` targets are scraped and all are up."""
        active = self.api("targets")["activeTargets"]
        return len(active) == n and all(t["health"] == "up" for t in active)

    def without_data(self, queries: list[tuple[str, str]]) -> list[str]:
        """``title: expr`` of each query that evaluates (no error) to an empty result."""
        return [
            f"{title}: {expr}"
            for title, expr in queries
            if not self.api("query", query=expr)["result"]
        ]

    def stop(self) -> None:
        """Terminate, kill after 20 s."""
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
