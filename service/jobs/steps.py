"""The torch-free steps of a pipeline, run by the worker itself (each a child job of the
pipeline whose JSON result the next step reads): ``snapshot`` (the data store's whole
dataset, old and new labels), ``gate`` (service/gate on the exported ONNX with the
served processing), ``register`` (into the registry, the gate report in the card) and
``policy`` (the lineage's promotion policy, service/promotion)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from service.config import Settings
from service.errors import InvalidInput, LineInspectError
from service.gate.golden import load_golden
from service.gate.rules import gate
from service.gate.scoring import resolve_model, score
from service.jobs.metrics import TrainingMetrics
from service.jobs.schema import JobKind
from service.promotion.policy import apply_policy
from service.registry import Registry, write_card
from service.store import datasets, snapshots
from service.store.store import Store, open_store

GOLDEN_YAML = "golden.yaml"
#: Card key of a version a pipeline registered: which pipeline, on which data.
PIPELINE_KEY = "pipeline"


class StepContext:
    """What the in-process steps share: settings, registry, the data store (opened on
    first use) and the worker's metrics."""

    def __init__(self, settings: Settings, metrics: TrainingMetrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.registry = Registry(settings.registry_root)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The data store of the settings."""
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def runner(self, kind: JobKind) -> Callable[[int, dict[str, Any], Path], dict[str, Any]]:
        """The function that runs a step of ``kind``: ``(pipeline id, params, run dir)``."""
        return {
            JobKind.SNAPSHOT: self.snapshot,
            JobKind.GATE: self.gate,
            JobKind.REGISTER: self.register,
            JobKind.POLICY: self.policy,
        }[kind]

    # --- steps ----------------------------------------------------------------------
    def snapshot(self, pipeline: int, params: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Snapshot the whole dataset; write a golden-set yaml for the gate."""
        st = self.store
        with st.transaction() as s:
            ds = datasets.get(s, str(params["dataset"]))
            snap, data_yaml, created = snapshots.create(s, st.blobs, ds, st.snapshots_root)
            fp, counts, classes = snap.fingerprint, dict(snap.counts), list(snap.classes)
        if not counts.get("golden"):
            raise InvalidInput(
                f"dataset {params['dataset']!r} has no golden samples: the gate cannot score "
                "(import some with --golden, or freeze them on a first import)"
            )
        golden = run_dir / GOLDEN_YAML
        doc = {"path": str(data_yaml.parent.resolve()), "train": "images/golden", "names": classes}
        golden.write_text(yaml.safe_dump(doc, sort_keys=False))
        return {
            "dataset": params["dataset"],
            "fingerprint": fp,
            "data": str(data_yaml.resolve()),
            "golden": str(golden),
            "counts": counts,
            "created": created,
        }

    def gate(self, pipeline: int, params: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Score the exported candidate against the lineage's production on the golden
        set, by the ``gate_rules`` setting. A lineage with no production passes."""
        s, lineage = self.settings, str(params["lineage"])
        runs = int(params.get("latency_runs", 20))
        cand = resolve_model(str(params["candidate"]), s.registry_root)
        golden = load_golden(str(params["golden"]))
        try:
            prod = self.registry.resolve(f"{lineage}@production")
        except LineInspectError:
            prod = None
        if prod is None:
            report: dict[str, Any] = {
                "passed": True,
                "note": f"{lineage} has no production version: nothing to compare, passed",
                "rules": s.gate_rules.model_dump(mode="json"),
                "candidate": score(cand, golden, s, runs).model_dump(mode="json"),
                "production": None,
                "results": [],
            }
        else:
            report = gate(cand, prod, golden, s.gate_rules, s, runs).model_dump(mode="json")
        passed = bool(report["passed"])
        self.metrics.record_gate(lineage, passed)
        path = run_dir / "gate.json"
        path.write_text(json.dumps(report, indent=2))
        production = None if prod is None else f"{prod.name}:{prod.version}"
        return {"passed": passed, "production": production, "report": report, "path": str(path)}

    def register(self, pipeline: int, params: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Register the candidate as the next version of the lineage, the gate report and
        the pipeline's provenance in its card; once per pipeline (a resumed step finds
        the version it registered)."""
        lineage, export_dir = str(params["lineage"]), Path(str(params["export_dir"]))
        for v in reversed(self.registry.versions(lineage)):
            mv = self.registry.get(lineage, v)
            if (mv.card.get(PIPELINE_KEY) or {}).get("job") == pipeline:
                return {"name": lineage, "version": v, "path": str(mv.path), "resumed": True}
        card = json.loads((export_dir / "card.json").read_text())
        card["gate"] = json.loads(Path(str(params["gate_report"])).read_text())
        card[PIPELINE_KEY] = {
            "job": pipeline,
            "dataset": params.get("dataset"),
            "snapshot": params.get("snapshot"),
            "teacher": params.get("teacher"),
        }
        write_card(export_dir, card)
        mv = self.registry.register(export_dir, lineage)
        return {"name": lineage, "version": mv.version, "path": str(mv.path)}

    def policy(self, pipeline: int, params: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Apply the lineage's promotion policy to the registered version."""
        lineage, version = str(params["lineage"]), int(params["version"])
        report = json.loads(Path(str(params["gate_report"])).read_text())
        passed = bool(params["passed"])
        return apply_policy(
            self.settings, self.registry, self.store, lineage, version, passed, report
        )
