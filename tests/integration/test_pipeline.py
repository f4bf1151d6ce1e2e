"""The ``pipeline`` kind end to end, with real ``worker train`` processes, a tiny detector
and tiny data in a real data store (SQLite):

- a trigger fires on the dataset's new labels; the pipeline snapshots, trains a teacher,
  distils a student (its worker SIGKILLed mid-distillation; another worker resumes the
  pipeline without rerunning the finished steps, the student from its checkpoint),
  evaluates, exports, gates against production by the configured rules (passes) and
  registers, the gate report in the card;
- a REST-submitted pipeline with a deliberately worse candidate (one epoch, no teacher)
  fails the gate under the default rules: registered, never production.

Production is the synthetic ONNX detector of tests/support/tiny_onnx.py, which sees the
golden set's blocks (tests/support/golden.py) perfectly well."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.jobs.command import read_records
from service.registry import Registry
from service.store import Store, importer
from tests.support.golden import write_blocks, write_golden
from tests.support.http import HTTP
from tests.support.servers import wait_until
from tests.support.tiny_dataset import tiny_pipeline_params
from tests.support.trainers import TrainerProcess, job, jobs_api, pid_alive

FAST = {"trainer_poll_s": 0.2, "trainer_threads": 1, "trainer_stop_grace_s": 5}
LENIENT = {"map50_margin": 1.0, "max_escape_increase": 1.0, "max_latency_ratio": 1000.0}


@pytest.fixture
def data_root(tmp_path: Path, tiny_registry: Registry) -> Path:
    """A store with dataset 'parts' (scratch, dent): 8 labelled blocks and the golden set."""
    root = tmp_path / "var"
    st = Store(root, golden_per_class=0)
    try:
        for path, golden in (
            (write_blocks(tmp_path / "train", 8), False),
            (write_golden(tmp_path / "golden"), True),
        ):
            summary = importer.run(st, path, "parts", "yolo", golden=golden)
            assert not summary.refused, summary.line()
    finally:
        st.close()
    return root


@pytest.fixture
def api(tiny_registry: Registry, data_root: Path) -> Iterator[str]:
    with jobs_api(tiny_registry.root, data_root) as url:
        yield url


def steps(api: str, pipeline: int) -> dict[str, dict[str, Any]]:
    """The pipeline's steps by name (from its progress' job ids)."""
    ids = (job(api, pipeline)["progress"] or {}).get("jobs") or {}
    return {name: job(api, i) for name, i in ids.items()}


def wait_for(api: str, pipeline: int, check: Any, timeout: float = 400) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(job(api, pipeline))
        return bool(check(seen))

    wait_until(reached, timeout=timeout, interval=0.2)
    return seen


def done(j: dict[str, Any]) -> bool:
    return j["state"] in ("succeeded", "failed", "cancelled")


def test_trigger_pipeline_survives_sigkill_and_passes_the_configured_gate(
    api: str, data_root: Path, tiny_registry: Registry, tmp_path: Path
) -> None:
    params = tiny_pipeline_params("tiny", "parts", student_epochs=12)
    trigger = {"dataset": "parts", "min_new_labels": 8, "min_per_class": 1, "debounce_s": 0}
    settings: dict[str, object] = {
        **FAST,
        "trainer_lease_s": 2,
        "registry_root": tiny_registry.root,
        "gate_rules": json.dumps(LENIENT),
        "triggers": json.dumps({"tiny": {**trigger, "pipeline": params}}),
    }
    first = TrainerProcess("first", data_root, tmp_path, **settings)
    second: TrainerProcess | None = None
    try:
        wait_until(lambda: HTTP.get(f"{api}/v1/jobs").json()["total"] > 0, timeout=120)
        pipe = HTTP.get(f"{api}/v1/jobs", params={"kind": "pipeline"}).json()["jobs"][0]
        assert pipe["params"]["lineage"] == "tiny" and pipe["snapshot"].startswith("store:")

        def distilling(j: dict[str, Any]) -> bool:
            assert not done(j), j
            prog = j["progress"] or {}
            child = prog.get("step_progress") or {}
            return prog.get("step_name") == "student" and child.get("epoch", 0) >= 2

        running = wait_for(api, pipe["id"], distilling)
        assert running["progress"]["steps"] == 8 and running["progress"]["step"] == 3
        before = steps(api, pipe["id"])
        assert before["snapshot"]["state"] == before["teacher"]["state"] == "succeeded"
        student_pid = before["student"]["pid"]
        first.kill()
        wait_until(lambda: not pid_alive(student_pid), timeout=5, interval=0.05)
        second = TrainerProcess("second", data_root, tmp_path, **settings)
        end = wait_for(api, pipe["id"], done)
        assert end["state"] == "succeeded", end["error"]
        assert end["worker"] == "second" and end["attempts"] == 2
        after = steps(api, pipe["id"])
        assert list(after) == [*before, "evaluate", "export", "gate", "register", "policy"]
        # finished steps were not rerun; the student resumed from its checkpoint
        for name in ("snapshot", "teacher"):
            assert after[name]["attempts"] == 1 and after[name]["worker"] == "first"
        student = after["student"]
        assert student["kind"] == "distil" and student["attempts"] == 2
        epochs = [r["epoch"] for r in read_records(Path(student["run_dir"]))]
        assert epochs == sorted(set(epochs)) and epochs[-1] == 12
        teacher = after["teacher"]["result"]
        assert student["params"]["teacher"] == teacher.get(
            "best_checkpoint", teacher["last_checkpoint"]
        )
        assert "map50" in after["evaluate"]["result"]["report"]
        # the gate compared with production (tiny:1) by the configured rules, and passed
        res = end["result"]
        assert res["gate"] == {"passed": True, "production": "tiny:1"}
        assert res["gate_report"]["rules"]["max_latency_ratio"] == 1000.0
        assert res["registered"] == {"name": "tiny", "version": 3}
        card = Registry(tiny_registry.root).get("tiny", 3).card
        assert card["gate"]["passed"] is True and card["pipeline"]["job"] == pipe["id"]
        assert card["gate"]["production"]["model"] == "tiny:1"
        # the default (manual) policy: the candidate alias, and the move in the history
        assert res["policy"]["policy"] == "manual"
        assert res["policy"]["aliases"] == {"candidate": 3}
        assert Registry(tiny_registry.root).aliases("tiny") == {"production": 1, "candidate": 3}
        hist = HTTP.get(f"{api}/v1/models/tiny/history").json()["items"]
        assert hist[0]["alias"] == "candidate" and hist[0]["to_version"] == 3
        assert hist[0]["actor"] == "pipeline"
        metrics = second.metrics()
        assert 'lineinspect_gate_runs_total{lineage="tiny",result="pass"} 1.0' in metrics
        assert 'lineinspect_gate_last_passed{lineage="tiny"} 1.0' in metrics
        assert 'lineinspect_gate_failures_in_a_row{lineage="tiny"} 0.0' in metrics
        # no new labels since the pipeline's snapshot: the trigger stays quiet
        assert HTTP.get(f"{api}/v1/jobs", params={"kind": "pipeline"}).json()["total"] == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_worse_candidate_fails_the_gate_is_registered_and_never_production(
    api: str, data_root: Path, tiny_registry: Registry, tmp_path: Path
) -> None:
    params = tiny_pipeline_params("tiny", "parts", student="train", evaluate=False)
    r = HTTP.post(f"{api}/v1/jobs", json={"kind": "pipeline", "params": params})
    assert r.status_code == 201, r.text
    again = HTTP.post(f"{api}/v1/jobs", json={"kind": "pipeline", "params": params})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    other = {**params, "student_epochs": 2}
    busy = HTTP.post(f"{api}/v1/jobs", json={"kind": "pipeline", "params": other})
    assert busy.status_code == 409 and "one pipeline at a time" in busy.json()["message"]
    trainer = TrainerProcess("a", data_root, tmp_path, **FAST, registry_root=tiny_registry.root)
    try:
        end = wait_for(api, r.json()["id"], done)
        assert end["state"] == "succeeded", end["error"]
        res = end["result"]
        assert res["gate"] == {"passed": False, "production": "tiny:1"}
        failed = {x["rule"] for x in res["gate_report"]["results"] if not x["passed"]}
        assert "map50" in failed  # one epoch from scratch against a model that sees it all
        assert list(res["jobs"]) == ["snapshot", "student", "export", "gate", "register", "policy"]
        reg = Registry(tiny_registry.root)
        version = res["registered"]["version"]
        assert reg.get("tiny", version).card["gate"]["passed"] is False
        assert reg.aliases("tiny") == {"production": 1}  # no alias at all for a failure
        assert res["policy"]["aliases"] == {} and res["policy"]["held"] == "gate failed"
        metrics = trainer.metrics()
        assert 'lineinspect_gate_runs_total{lineage="tiny",result="fail"} 1.0' in metrics
        assert 'lineinspect_gate_failures_in_a_row{lineage="tiny"} 1.0' in metrics
        assert 'lineinspect_gate_last_passed{lineage="tiny"} 0.0' in metrics
    finally:
        trainer.stop()


def test_cancelling_a_pipeline_stops_its_running_step(
    api: str, data_root: Path, tiny_registry: Registry, tmp_path: Path
) -> None:
    params = tiny_pipeline_params("tiny", "parts", student="train", student_epochs=400)
    pipe = HTTP.post(f"{api}/v1/jobs", json={"kind": "pipeline", "params": params}).json()
    trainer = TrainerProcess("a", data_root, tmp_path, **FAST, registry_root=tiny_registry.root)
    try:

        def training(j: dict[str, Any]) -> bool:
            assert not done(j), j
            return ((j["progress"] or {}).get("step_progress") or {}).get("epoch", 0) >= 1

        wait_for(api, pipe["id"], training)
        student = steps(api, pipe["id"])["student"]
        assert student["pid"] and pid_alive(student["pid"])
        r = HTTP.delete(f"{api}/v1/jobs/{pipe['id']}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        wait_until(lambda: not pid_alive(student["pid"]), timeout=10, interval=0.05)
        assert job(api, student["id"])["state"] == "cancelled"
        assert (Path(student["run_dir"]) / "last.pt").is_file()  # the checkpoint stays
        assert trainer.is_ready()
    finally:
        trainer.stop()
