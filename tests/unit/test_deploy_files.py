"""deploy/ and docker-compose.yml, validated without a Docker engine.

promtool checks the Prometheus config and alert rules (and runs the alert unit tests);
the compose file, Kubernetes manifests, Dockerfiles and Grafana provisioning are parsed
and checked for the services, ports and names the stack relies on. Every metric a
dashboard panel or alert names must be one service/metrics.py exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import Settings
from service.jobs.metrics import TrainingMetrics
from service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "lineinspect.json"
METRIC_RE = re.compile(r"\blineinspect_[a-z0-9_]+\b")


def promtool() -> str:
    """The promtool binary; fail (never skip) with the fix when it is missing."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: run `make tools` (installs Debian's prometheus package)")
    return found


def run_promtool(*args: str) -> None:
    proc = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def exported_metric_names() -> set[str]:
    """Every sample name a lineinspect process (API, inference or training worker) can
    export."""
    names: set[str] = set()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    for registry in (Metrics().registry, TrainingMetrics(lambda: {"queued": 0}).registry):
        for fam in registry.collect():
            names.update(fam.name + s for s in suffixes.get(fam.type, [""]))
    return names


def dashboard_panels() -> list[dict[str, Any]]:
    dash = json.loads(DASHBOARD.read_text())
    return [p for p in dash["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def k8s(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


# --- Prometheus ---------------------------------------------------------------------
def test_promtool_check_config() -> None:
    run_promtool("check", "config", str(PROM / "prometheus.yml"))


def test_promtool_check_rules() -> None:
    run_promtool("check", "rules", str(PROM / "alerts.yml"))


def test_promtool_alert_unit_tests() -> None:
    run_promtool("test", "rules", str(PROM / "alerts_test.yml"))


def test_required_alerts_exist_and_name_real_metrics() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    for name in (
        "LineinspectLatencySLOBreach",
        "LineinspectDefectRateSpike",
        "LineinspectQueueBacklogGrowing",
        "LineinspectWorkerDown",
    ):
        assert name in rules, name
    for rule in rules.values():
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warning"}
    used = {m for r in rules.values() for m in METRIC_RE.findall(r["expr"])}
    assert used and used <= exported_metric_names(), used - exported_metric_names()
    jobs = {
        j["job_name"]
        for j in yaml.safe_load((PROM / "prometheus.yml").read_text())["scrape_configs"]
    }
    for rule in rules.values():
        assert set(re.findall(r'job="([^"]+)"', rule["expr"])) <= jobs, rule["alert"]


def test_operations_doc_explains_every_alert() -> None:
    ops = (ROOT / "docs" / "operations.md").read_text()
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert f"### {rule['alert']}" in ops and anchor == rule["alert"].lower()


# --- Grafana --------------------------------------------------------------------------
def test_dashboard_panels_query_real_metrics() -> None:
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        assert p["datasource"]["uid"] == "prometheus"
    exprs = " ".join(dashboard_exprs())
    for needed in (
        "lineinspect_frames_total",
        "lineinspect_defects_total",
        "lineinspect_request_duration_seconds_bucket",
        "lineinspect_batch_size_bucket",
        "lineinspect_queue_length",
        "lineinspect_queue_lag",
        "lineinspect_dropped_frames_total",
        "lineinspect_model_info",
        "lineinspect_model_execution_provider",
    ):
        assert needed in exprs, needed
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le" in exprs
    assert set(METRIC_RE.findall(exprs)) <= exported_metric_names()


def test_grafana_provisioning_matches_compose() -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert ds["uid"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((prov / "dashboards" / "lineinspect.yml").read_text())["providers"][0]
    grafana = compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"


# --- docker-compose -------------------------------------------------------------------
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_compose_services_ports_and_settings() -> None:
    services = compose()["services"]
    assert {"api", "worker", "redis", "prometheus", "grafana"} <= set(services)
    assert "8000:8000" in services["api"]["ports"]
    grpc_port = services["api"]["environment"]["LINEINSPECT_GRPC_PORT"]
    assert f"{grpc_port}:{grpc_port}" in services["api"]["ports"]
    assert "9090:9090" in services["prometheus"]["ports"]
    assert "3000:3000" in services["grafana"]["ports"]
    assert services["worker"]["command"][-2:] == ["worker", "infer"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    fields = set(Settings.model_fields)
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["LINEINSPECT_QUEUE"] == "redis" and env["LINEINSPECT_REDIS_URL"].startswith(
            "redis://redis:"
        )
        assert {
            k[len("LINEINSPECT_") :].lower() for k in env if k.startswith("LINEINSPECT_")
        } <= fields
    assert services["worker"]["environment"]["LINEINSPECT_WORKER_METRICS_PORT"] == "9100"
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {j["job_name"]: j.get("dns_sd_configs", [{}])[0] for j in prom["scrape_configs"]}
    assert (
        targets["lineinspect-api"]["names"] == ["api"]
        and targets["lineinspect-api"]["port"] == 8000
    )
    workers = {
        n for n, svc in services.items() if svc.get("command", [])[-2:] == ["worker", "infer"]
    }
    assert workers == {"worker", "worker-gpu0", "worker-gpu1"}
    assert set(targets["lineinspect-worker"]["names"]) == workers  # every worker is scraped
    for name in workers:
        port = services[name]["environment"]["LINEINSPECT_WORKER_METRICS_PORT"]
        assert int(port) == targets["lineinspect-worker"]["port"] == 9100
    for svc in services.values():  # every bind-mounted source exists
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), src


# --- Dockerfiles ------------------------------------------------------------------------
DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.train"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfiles_non_root_with_healthcheck(name: str) -> None:
    text = (DEPLOY / name).read_text()
    final = text.split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*CMD .*healthz", final, re.M | re.S)
    for src in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", text, re.M):
        for part in src.split():
            assert part == "registry" or (ROOT / part).exists(), part
    if name.endswith("gpu"):
        assert "nvidia/cuda" in text and "cudnn-runtime" in text and "onnxruntime-gpu" in text
    # Only the training image installs torch (the train extra); serving stays torch-free.
    assert ("optional-dependencies']['train']" in text) == name.endswith("train"), name


# --- Kubernetes -------------------------------------------------------------------------
def test_k8s_deployments_services_and_probes() -> None:
    for name, port, path in (
        ("lineinspect-api", 8000, "/readyz"),
        ("lineinspect-worker", 9100, "/readyz"),
    ):
        dep = k8s("Deployment", name)
        pod = dep["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert {p["containerPort"] for p in container["ports"]} >= {port}
        assert container["readinessProbe"]["httpGet"]["path"] == path
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["envFrom"][0]["configMapRef"]["name"] == "lineinspect-config"
        svc = k8s("Service", name)
        assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        assert port in {p["port"] for p in svc["spec"]["ports"]}
    trainer = k8s("Deployment", "lineinspect-trainer")["spec"]["template"]
    svc = k8s("Service", "lineinspect-trainer")
    assert svc["spec"]["selector"] == trainer["metadata"]["labels"]
    assert trainer["metadata"]["annotations"]["prometheus.io/port"] == "9101"
    worker = k8s("Deployment", "lineinspect-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"][-2:] == ["worker", "infer"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    on_disk = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk


def test_k8s_configmap_and_queue_autoscaler_agree() -> None:
    data = k8s("ConfigMap", "lineinspect-config")["data"]
    assert data["LINEINSPECT_QUEUE"] == "redis"
    assert {k[len("LINEINSPECT_") :].lower() for k in data} <= set(Settings.model_fields)
    scaled = k8s("ScaledObject", "lineinspect-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "lineinspect-worker"
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "redis-streams"
    meta = trigger["metadata"]
    assert meta["stream"] == f"{data['LINEINSPECT_REDIS_PREFIX']}:frames"
    assert int(meta["streamLength"]) > 0
