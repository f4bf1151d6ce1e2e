"""deploy/ for the learning loop: the training worker in Compose and Kubernetes, the
learning-loop Grafana dashboard and the learning-loop alert rules (checked statically;
tests/integration/test_learning_dashboard.py evaluates the panels in a real Prometheus).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from service.config import Settings
from tests.unit.test_deploy_files import (
    DEPLOY,
    METRIC_RE,
    PROM,
    alert_rules,
    compose,
    exported_metric_names,
    k8s,
)

DASHBOARDS = DEPLOY / "grafana" / "dashboards"
LEARNING = DASHBOARDS / "learning-loop.json"
ROWS = ["Training", "Gate", "Promotion", "Shadow", "Audit"]


def learning_dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(LEARNING.read_text())
    return doc


def panels_by_row() -> dict[str, list[dict[str, Any]]]:
    """Row title → the panels that follow it (Grafana's flat layout of open rows)."""
    out: dict[str, list[dict[str, Any]]] = {}
    row = None
    for p in learning_dashboard()["panels"]:
        if p["type"] == "row":
            row = p["title"]
            out[row] = []
        else:
            assert row is not None, f"panel {p['title']} before the first row"
            out[row].append(p)
    return out


def row_exprs(row: str) -> str:
    return " ".join(t["expr"] for p in panels_by_row()[row] for t in p["targets"])


# --- the learning-loop dashboard ------------------------------------------------------
def test_learning_dashboard_rows_panels_and_metrics() -> None:
    dash = learning_dashboard()
    main = json.loads((DASHBOARDS / "lineinspect.json").read_text())
    assert dash["uid"] != main["uid"] and dash["title"] != main["title"]
    by_row = panels_by_row()
    assert list(by_row) == ROWS
    panels = [p for row in by_row.values() for p in row]
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)
    for p in panels:
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        assert p["datasource"]["uid"] == "prometheus" and p["description"], p["title"]
        assert {t["refId"] for t in p["targets"]} == {chr(65 + i) for i in range(len(p["targets"]))}
    used = {m for p in panels for t in p["targets"] for m in METRIC_RE.findall(t["expr"])}
    assert used <= exported_metric_names(), used - exported_metric_names()
    needed = {
        "Training": [
            "lineinspect_training_jobs",
            "lineinspect_training_epoch",
            "lineinspect_training_epochs_planned",
            "lineinspect_training_eta_seconds",
            "lineinspect_training_jobs_finished_total",
        ],
        "Gate": ["lineinspect_gate_last_passed", "lineinspect_gate_failures_in_a_row"],
        "Promotion": ["lineinspect_promotions_total", "lineinspect_rollbacks_total"],
        "Shadow": [
            'lineinspect_shadow_frames_total{outcome="agree"}',
            'lineinspect_shadow_frames_total{outcome!="agree"}',
            "lineinspect_shadow_precision",
            "lineinspect_shadow_recall",
            "lineinspect_shadow_latency_seconds_bucket",
            "lineinspect_shadow_dropped_total",
        ],
        "Audit": [
            "lineinspect_audit_rows_total",
            "lineinspect_audit_dropped_total",
            "lineinspect_audit_queue_depth",
        ],
    }
    for row, names in needed.items():
        exprs = row_exprs(row)
        for name in names:
            assert name in exprs, (row, name)
    # Histograms aggregate across replicas by le; gauges every worker reports alike by max.
    quantiles = re.findall(
        r"histogram_quantile\([^,]+, (\w+ by \([^)]*\))", " ".join(map(row_exprs, ROWS))
    )
    assert len(quantiles) == 3
    for agg in quantiles:
        assert agg.startswith("sum by (le"), agg
    assert "max by (state) (lineinspect_training_jobs)" in row_exprs("Training")


def test_learning_dashboard_is_provisioned_with_the_main_one() -> None:
    prov = DEPLOY / "grafana" / "provisioning" / "dashboards" / "lineinspect.yml"
    (provider,) = yaml.safe_load(prov.read_text())["providers"]
    grafana = compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    # The provider loads every JSON file of the mounted directory: this one included.
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert LEARNING.parent == DASHBOARDS and provider["type"] == "file"


# --- learning-loop alerts ---------------------------------------------------------------
def test_learning_loop_alerts() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    failed = rules["LineinspectTrainingJobFailed"]["expr"]
    assert 'lineinspect_training_jobs_finished_total{state="failed"}' in failed
    gate = rules["LineinspectGateFailingRepeatedly"]["expr"]
    assert re.search(r"lineinspect_gate_failures_in_a_row\)\s*>=\s*3\b", gate), gate
    assert "lineinspect_shadow_frames_total" in rules["LineinspectShadowDisagreementHigh"]["expr"]
    tests = (PROM / "alerts_test.yml").read_text()
    for name in (
        "LineinspectTrainingJobFailed",
        "LineinspectGateFailingRepeatedly",
        "LineinspectShadowDisagreementHigh",
    ):
        assert f"alertname: {name}" in tests, name


# --- the training worker ------------------------------------------------------------
def test_compose_trainer_shares_the_apis_volumes_and_database_and_has_a_gpu() -> None:
    services = compose()["services"]
    trainer, api = services["trainer"], services["api"]
    assert trainer["command"] == ["lineinspect", "worker", "train"]
    assert trainer["build"]["dockerfile"] == "deploy/Dockerfile.train"
    assert (DEPLOY / "Dockerfile.train").is_file() and trainer["image"] == "lineinspect:train"
    # no serving service runs the torch image
    assert [n for n, svc in services.items() if svc.get("image") == trainer["image"]] == ["trainer"]
    # The same registry and data volumes, read-write (new versions, run directories and
    # the SQLite project database under data_root), and the same database settings.
    assert trainer["volumes"] == api["volumes"] and not any(
        v.endswith(":ro") for v in trainer["volumes"]
    )
    for key in ("LINEINSPECT_REGISTRY_ROOT", "LINEINSPECT_DATABASE_URL", "LINEINSPECT_DATA_ROOT"):
        assert trainer["environment"].get(key) == api["environment"].get(key), key
    port = trainer["environment"]["LINEINSPECT_TRAINER_METRICS_PORT"]
    assert trainer["environment"]["HEALTHCHECK_PORT"] == port and port in trainer["expose"]
    assert int(port) == Settings.model_fields["trainer_metrics_port"].default
    (gpu,) = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert len(gpu["device_ids"]) == 1 and "count" not in gpu
    assert trainer["profiles"] == ["train"]  # a GPU reservation fails on a host without one
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "lineinspect-trainer"]
    assert job["dns_sd_configs"][0]["names"] == ["trainer"]
    assert job["dns_sd_configs"][0]["port"] == int(port)


def test_k8s_trainer_requests_a_gpu_shares_the_pvcs_and_probes_its_metrics_port() -> None:
    pod = k8s("Deployment", "lineinspect-trainer")["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    assert c["args"] == ["lineinspect", "worker", "train"]
    assert c["image"] == "lineinspect:train"
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    sec = pod["spec"]["securityContext"]
    assert sec["runAsNonRoot"] is True and sec["runAsUser"] == 10001
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    data = k8s("ConfigMap", "lineinspect-config")["data"]
    (port,) = [p["containerPort"] for p in c["ports"] if p["name"] == "metrics"]
    assert port == int(data["LINEINSPECT_TRAINER_METRICS_PORT"])
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # The API's volumes and database: the same PVCs at the same paths, and the same
    # config map and database secret.
    api = k8s("Deployment", "lineinspect-api")["spec"]["template"]
    (api_c,) = api["spec"]["containers"]

    def claims(p: dict[str, Any]) -> dict[str, str]:
        return {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in p["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        }

    def mounts(cont: dict[str, Any]) -> dict[str, tuple[str, bool]]:
        return {
            m["name"]: (m["mountPath"], bool(m.get("readOnly")))
            for m in cont["volumeMounts"]
            if m["name"] in {"registry", "data"}
        }

    assert (
        claims(pod)
        == claims(api)
        == {
            "registry": "lineinspect-registry",
            "data": "lineinspect-data",
        }
    )
    assert (
        mounts(c)
        == mounts(api_c)
        == {
            "registry": ("/app/registry", False),
            "data": ("/app/var", False),
        }
    )
    assert c["envFrom"] == api_c["envFrom"]
    assert {"secretRef": {"name": "lineinspect-database", "optional": True}} in c["envFrom"]
