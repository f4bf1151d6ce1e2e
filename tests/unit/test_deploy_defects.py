"""Static checks for the ways the deploy stack breaks at run time although it parses.

* the KEDA trigger scales on the stream backlog (XLEN), not on what workers hold;
* the pinned onnxruntime-gpu wheel is built for the GPU base image's CUDA major;
* every ``LINEINSPECT_*`` variable set anywhere in deploy/ is a real setting
  (pydantic-settings ignores a misspelled one silently);
* no two Compose services or replicas claim the same host port or GPU;
* the registry and data are volumes the service user can write, seeded from the image.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from service.config import Settings
from tests.unit.test_deploy_files import compose, k8s, k8s_docs

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILES = [DEPLOY / name for name in ("Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.train")]

# Trigger metadata KEDA v2.20.2's redis-streams scaler reads (pkg/scalers/
# redis_streams_scaler.go and the connection fields of redis_scaler.go).
KEDA_REDIS_STREAMS_FIELDS = {
    "address",
    "addresses",
    "host",
    "hosts",
    "port",
    "ports",
    "username",
    "password",
    "sentinelUsername",
    "sentinelPassword",
    "sentinelMaster",
    "unsafeSsl",
    "enableTLS",
    "databaseIndex",
    "stream",
    "consumerGroup",
    "pendingEntriesCount",
    "streamLength",
    "lagCount",
    "activationLagCount",
}


def onnxruntime_gpu_cuda_major(version: str) -> int:
    """The CUDA major PyPI's onnxruntime-gpu wheels are built for, from their Requires-Dist
    (``nvidia-cuda-runtime-cu12 ~= 12.0`` up to 1.26.0, ``nvidia-cuda-runtime(-cu13)
    ~= 13.0`` from 1.27.0; CUDA 11 before 1.19)."""
    major, minor = (int(x) for x in version.split(".")[:2])
    assert major == 1, version
    return 11 if minor < 19 else 12 if minor <= 26 else 13


def pinned(name: str) -> str:
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    return pins[name]


def settings_fields() -> set[str]:
    return set(Settings.model_fields)


def lineinspect_vars(env: dict[str, Any]) -> set[str]:
    return {k for k in env if k.startswith("LINEINSPECT_")}


def assert_real_settings(where: str, names: set[str]) -> None:
    unknown = {n for n in names if n[len("LINEINSPECT_") :].lower() not in settings_fields()}
    assert not unknown, f"{where}: not settings: {sorted(unknown)}"


# --- KEDA -----------------------------------------------------------------------------
def test_keda_trigger_scales_on_the_stream_backlog() -> None:
    (trigger,) = k8s("ScaledObject", "lineinspect-worker")["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "redis-streams"
    assert set(meta) <= KEDA_REDIS_STREAMS_FIELDS, set(meta) - KEDA_REDIS_STREAMS_FIELDS
    # With consumerGroup set KEDA ignores streamLength and scales on XPENDING (or on the
    # group lag, which Redis reports as NULL once answered frames are deleted).
    assert "consumerGroup" not in meta
    assert "pendingEntriesCount" not in meta and "lagCount" not in meta
    data = k8s("ConfigMap", "lineinspect-config")["data"]
    prefetch = int(data["LINEINSPECT_WORKER_PREFETCH"])
    assert prefetch == 2 * int(data["LINEINSPECT_MAX_BATCH"]) * int(
        data["LINEINSPECT_INFERENCE_THREADS"]
    )
    # XLEN counts what the workers hold too: the target per replica must exceed it, or
    # a fully busy worker alone asks for another replica.
    assert int(meta["streamLength"]) > prefetch
    assert meta["stream"] == f"{data['LINEINSPECT_REDIS_PREFIX']}:frames"


# --- GPU image ------------------------------------------------------------------------
def test_onnxruntime_gpu_pin_matches_the_base_images_cuda_major() -> None:
    text = (DEPLOY / "Dockerfile.gpu").read_text()
    (base,) = re.findall(
        r"^FROM nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-\S+ AS base$", text, re.M
    )
    assert onnxruntime_gpu_cuda_major(pinned("onnxruntime-gpu")) == int(base)
    # The GPU build installs exactly the pinned wheel and drops the CPU one.
    assert "-c constraints.txt -r requirements.txt" in text
    assert "optional-dependencies']['gpu']" in text and "startswith('onnxruntime')" in text


def test_cuda_major_table_is_what_pypi_says() -> None:
    assert [onnxruntime_gpu_cuda_major(v) for v in ("1.18.1", "1.19.0", "1.26.0", "1.27.0")] == [
        11,
        12,
        12,
        13,
    ]


# --- settings named in deploy/ ----------------------------------------------------------
def test_every_lineinspect_variable_is_a_setting() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        assert_real_settings(f"compose {name}", lineinspect_vars(svc.get("environment", {})))
    assert_real_settings(
        "configmap", lineinspect_vars(k8s("ConfigMap", "lineinspect-config")["data"])
    )
    for doc in k8s_docs():
        if doc["kind"] != "Deployment":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            names = {e["name"] for e in c.get("env", [])}
            assert_real_settings(doc["metadata"]["name"], lineinspect_vars(dict.fromkeys(names)))
    for path in DOCKERFILES:
        names = set(re.findall(r"\b(LINEINSPECT_[A-Z0-9_]+)=", path.read_text()))
        assert names, path
        assert_real_settings(path.name, names)


def test_a_misspelled_variable_would_be_caught() -> None:
    try:
        assert_real_settings("probe", {"LINEINSPECT_REDIS_URLL"})
    except AssertionError as exc:
        assert "LINEINSPECT_REDIS_URLL" in str(exc)
    else:
        raise AssertionError("a misspelled setting passed")


# --- host ports and GPUs -----------------------------------------------------------------
def replicas(svc: dict[str, Any]) -> int:
    return int(svc.get("deploy", {}).get("replicas", 1))


def test_no_two_services_or_replicas_claim_a_host_port_or_gpu() -> None:
    services = compose()["services"]
    ports: dict[str, str] = {}
    gpus: dict[str, str] = {}
    for name, svc in services.items():
        published = [str(p).rsplit(":", 1)[0] for p in svc.get("ports", [])]
        assert all(":" not in p or p.count(":") == 1 for p in published)
        if published:  # a fixed host port cannot be shared by replicas
            assert replicas(svc) == 1, f"{name}: {replicas(svc)} replicas on fixed host ports"
        for host_port in (p.split(":")[-1] for p in published):
            assert host_port not in ports, f"{name} and {ports[host_port]} publish {host_port}"
            ports[host_port] = name
        devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {})
        for dev in devices.get("devices", []):
            assert "count" not in dev, f"{name}: count places every replica on GPU 0"
            assert replicas(svc) == 1, f"{name}: replicas would share its GPU"
            for gpu in dev["device_ids"]:
                assert gpu not in gpus, f"{name} and {gpus[gpu]} both claim GPU {gpu}"
                gpus[gpu] = name
    assert len(gpus) >= 2 and set(ports) >= {"8000", "8001", "9090", "3000"}
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        name
        for job in prom["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    assert set(gpus.values()) <= scraped  # every GPU service (workers, trainer) is scraped


# --- volumes -------------------------------------------------------------------------------
def test_compose_registry_and_data_are_named_volumes_seeded_from_the_image() -> None:
    doc = compose()
    services = doc["services"]
    assert {"registry", "data"} <= set(doc["volumes"])
    init = services["registry-init"]
    assert init["command"] == [
        "lineinspect-seed-registry",
        "/opt/lineinspect/registry",
        "/app/registry",
    ]
    assert "registry:/app/registry" in init["volumes"]
    for name, svc in services.items():
        if svc.get("command", [None])[0] != "lineinspect":
            continue
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert mounts["/app/registry"] == "registry" and mounts["/app/var"] == "data", name
        assert svc["depends_on"]["registry-init"]["condition"] == "service_completed_successfully"
        assert svc["environment"]["LINEINSPECT_REGISTRY_ROOT"] == "/app/registry"
    api_mounts = services["api"]["volumes"]
    assert "registry:/app/registry" in api_mounts  # read-write: the API promotes
    for path in DOCKERFILES:
        text = path.read_text()
        assert "chown lineinspect:lineinspect /app /app/registry /app/var" in text
        assert "COPY registry /opt/lineinspect/registry" in text
        assert "COPY deploy/seed-registry.sh /usr/local/bin/lineinspect-seed-registry" in text
    assert "!deploy/seed-registry.sh" in (ROOT / ".dockerignore").read_text()


def test_k8s_pods_seed_the_registry_and_report_why_they_exit() -> None:
    for name in ("lineinspect-api", "lineinspect-worker", "lineinspect-trainer"):
        pod = k8s("Deployment", name)["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["args"][0] == "lineinspect-seed-registry"
        target = {m["name"]: m for m in init["volumeMounts"]}["registry"]
        assert init["args"][2] == target["mountPath"] and not target.get("readOnly")
        assert init["image"] == pod["containers"][0]["image"]
        for c in [init, *pod["containers"]]:
            assert c["terminationMessagePolicy"] == "FallbackToLogsOnError", (name, c["name"])
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {"registry": "lineinspect-registry", "data": "lineinspect-data"}
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["name"] == "lineinspect" and "/" in image["newName"]


# --- image layers ----------------------------------------------------------------------
def build_stage(text: str) -> list[str]:
    stage = text.split(" AS build\n", 1)[1].split("\nFROM ", 1)[0]
    return [line for line in stage.splitlines() if re.match(r"^(COPY|RUN) ", line)]


def test_dependencies_install_in_a_layer_before_the_source() -> None:
    for path in DOCKERFILES:
        steps = build_stage(path.read_text())
        assert steps[0] == "COPY pyproject.toml constraints.txt ./", path.name
        assert steps[1].startswith("RUN ") and "requirements.txt" in steps[1], path.name
        source = [i for i, s in enumerate(steps) if s.startswith("COPY service")]
        assert source and source[0] > 1, path.name
        assert steps[-1] == "RUN /opt/venv/bin/pip install --no-deps -c constraints.txt .", path
