"""Jobs end to end: REST submission on the serving app, real ``worker train`` processes
running a tiny detector on tiny generated data (each run a few seconds), on SQLite.

Covers success with progress, idempotency, cancel mid-run (checkpoint kept), and the
SIGKILL of a worker mid-training: its child dies with it, the lease lapses, a second
worker resumes from the checkpoint and the epoch log shows no restart from zero."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.jobs.command import read_records
from service.registry import Registry
from tests.support.http import HTTP
from tests.support.postgres_server import PostgresServer, postgres_server
from tests.support.servers import wait_until
from tests.support.tiny_dataset import tiny_train_params, write_tiny_dataset
from tests.support.trainers import TrainerProcess, job, jobs_api, pid_alive

FAST = {"trainer_poll_s": 0.2, "trainer_threads": 1, "trainer_stop_grace_s": 5}


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "ds")


__all__ = ["postgres_server"]  # the fixture


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (SQLite under data_root), or a PostgreSQL server's URL for tests marked
    ``@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)``."""
    if getattr(request, "param", "sqlite") != "postgresql":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    yield server.create_database()


@pytest.fixture
def api(tiny_registry: Registry, data_root: Path, database_url: str | None) -> Iterator[str]:
    with jobs_api(tiny_registry.root, data_root, database_url) as url:
        yield url


def submit(api: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    r = HTTP.post(f"{api}/v1/jobs", json={"kind": "train", "params": params})
    assert r.status_code in (200, 201), r.text
    return r.status_code, dict(r.json())


def wait_state(api: str, job_id: int, states: set[str], timeout: float = 180) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(job(api, job_id))
        return seen["state"] in states

    wait_until(reached, timeout=timeout, interval=0.2)
    return seen


def wait_epoch(api: str, job_id: int, epoch: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(job(api, job_id))
        assert seen["state"] in ("queued", "running"), seen
        return bool(seen["progress"]) and seen["progress"]["epoch"] >= epoch

    wait_until(reached, timeout=180, interval=0.1)
    return seen


def test_a_job_runs_to_success_with_progress_and_is_asked_once(
    api: str, data: Path, data_root: Path, tmp_path: Path
) -> None:
    params = tiny_train_params(data, epochs=3)
    status, first = submit(api, params)
    status_again, again = submit(api, params)
    assert (status, status_again) == (201, 200) and again["id"] == first["id"]
    trainer = TrainerProcess("a", data_root, tmp_path, **FAST)
    try:
        wait_until(trainer.is_ready, timeout=60)
        done = wait_state(api, first["id"], {"succeeded", "failed"})
        assert done["state"] == "succeeded", done["error"]
        assert done["progress"]["epoch"] == 3 and done["progress"]["epochs"] == 3
        assert set(done["progress"]["losses"]) == {"box", "obj", "cls"}
        res = done["result"]
        assert Path(res["last_checkpoint"]).is_file() and res["epochs"] == 3
        assert done["worker"] == "a" and done["attempts"] == 1
        metrics = trainer.metrics()
        assert 'lineinspect_training_jobs{state="succeeded"} 1.0' in metrics
        assert 'lineinspect_training_jobs_finished_total{kind="train",state="succeeded"} 1.0' in (
            metrics
        )
        # asked again after it succeeded: still the one job, nothing trains twice
        status_done, same = submit(api, params)
        assert status_done == 200 and same["id"] == first["id"] and same["state"] == "succeeded"
        page = HTTP.get(f"{api}/v1/jobs", params={"state": "succeeded", "kind": "train"}).json()
        assert page["total"] == 1 and page["jobs"][0]["id"] == first["id"]
        log = HTTP.get(f"{api}/v1/jobs/{first['id']}/log").text
        assert '"best"' in log  # the training CLI's closing summary
        # an evaluate job reads the train job's result, as a pipeline step will
        ev = {"ckpt": res["last_checkpoint"], "no_onnx": True}
        r = HTTP.post(
            f"{api}/v1/jobs", json={"kind": "evaluate", "params": ev, "parent_id": first["id"]}
        )
        assert r.status_code == 201, r.text
        evaluated = wait_state(api, r.json()["id"], {"succeeded", "failed"})
        assert evaluated["state"] == "succeeded", evaluated["error"]
        assert {"map50", "map50_95"} <= set(evaluated["result"]["report"])
        # a distil job with the train job's checkpoint as its teacher (pinned as a file)
        student = {**tiny_train_params(data, epochs=2), "teacher": res["last_checkpoint"]}
        r = HTTP.post(
            f"{api}/v1/jobs", json={"kind": "distil", "params": student, "parent_id": first["id"]}
        )
        assert r.status_code == 201 and r.json()["base_refs"]["teacher"].startswith("file:")
        distilled = wait_state(api, r.json()["id"], {"succeeded", "failed"})
        assert distilled["state"] == "succeeded", distilled["error"]
        assert Path(distilled["result"]["last_checkpoint"]).is_file()
        assert distilled["progress"]["epoch"] == 2
        children = HTTP.get(f"{api}/v1/jobs", params={"parent_id": first["id"]}).json()
        assert [c["id"] for c in children["jobs"]] == [distilled["id"], evaluated["id"]]
    finally:
        trainer.stop()


def test_a_prune_job_compresses_registers_and_reports_its_stages(
    api: str, data: Path, data_root: Path, tmp_path: Path, tiny_registry: Registry
) -> None:
    """The training worker runs ``lineinspect prune`` on a trained checkpoint: sparse
    training and KD fine-tuning report as one epoch count, and the pruned export is
    registered with its pruning record."""
    _, trained = submit(api, tiny_train_params(data, epochs=2))
    trainer = TrainerProcess("a", data_root, tmp_path, registry_root=tiny_registry.root, **FAST)
    try:
        done = wait_state(api, trained["id"], {"succeeded", "failed"})
        assert done["state"] == "succeeded", done["error"]
        ckpt = done["result"]["last_checkpoint"]
        common = {k: v for k, v in tiny_train_params(data, 1).items() if k not in ("arch", "head")}
        common.pop("epochs"), common.pop("mosaic"), common.pop("warmup_epochs")
        params = {
            **common,
            "from": ckpt,
            "ratio": 0.5,
            "layers": 1,
            "sparse_epochs": 2,
            "finetune_epochs": 1,
            "bench_seconds": 0.05,
            "register": "tiny-edge",
        }
        r = HTTP.post(f"{api}/v1/jobs", json={"kind": "prune", "params": params})
        assert r.status_code == 201, r.text
        assert r.json()["base_refs"]["from"].startswith("file:")
        pruned = wait_state(api, r.json()["id"], {"succeeded", "failed"}, timeout=300)
        assert pruned["state"] == "succeeded", pruned["error"]
        prog = pruned["progress"]
        assert (prog["stage"], prog["epoch"], prog["epochs"]) == ("finetune", 3, 3), prog
        res = pruned["result"]
        assert res["pruning"]["ratio"] == 0.5 and len(res["pruning"]["removed_blocks"]) == 1
        assert res["pruning"]["params_after"] < res["pruning"]["params_before"]
        card = Registry(tiny_registry.root).resolve("tiny-edge:1").card
        assert card["pruning"]["source"]["ref"] == ckpt
        missing = HTTP.post(f"{api}/v1/jobs", json={"kind": "prune", "params": {"from": ckpt}})
        assert missing.status_code == 400 and "'data', 'ratio'" in missing.json()["message"]
    finally:
        trainer.stop()


def test_cancel_mid_run_stops_the_child_within_seconds_and_keeps_the_checkpoint(
    api: str, data: Path, data_root: Path, tmp_path: Path
) -> None:
    _, j = submit(api, tiny_train_params(data, epochs=400))
    trainer = TrainerProcess("a", data_root, tmp_path, **FAST)
    try:
        running = wait_epoch(api, j["id"], 2)
        pid = running["pid"]
        assert pid and pid_alive(pid)
        r = HTTP.delete(f"{api}/v1/jobs/{j['id']}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        wait_until(lambda: not pid_alive(pid), timeout=10, interval=0.05)
        run_dir = Path(running["run_dir"])
        assert (run_dir / "last.pt").is_file()
        assert len(read_records(run_dir)) < 400
        assert job(api, j["id"])["state"] == "cancelled"
        assert trainer.is_ready()  # the worker carries on
        assert HTTP.delete(f"{api}/v1/jobs/{j['id']}").status_code == 200  # idempotent
        wait_until(lambda: 'state="lost"' in trainer.metrics(), timeout=10)
    finally:
        trainer.stop()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_sigkilled_worker_takes_its_child_along_and_another_resumes_the_job(
    api: str, data: Path, data_root: Path, tmp_path: Path, database_url: str | None
) -> None:
    epochs = 40
    _, j = submit(api, tiny_train_params(data, epochs=epochs))
    short_lease: dict[str, object] = {**FAST, "trainer_lease_s": 2}
    if database_url:
        short_lease["database_url"] = database_url
    first = TrainerProcess("first", data_root, tmp_path, **short_lease)
    second: TrainerProcess | None = None
    try:
        running = wait_epoch(api, j["id"], 3)
        pid = running["pid"]
        assert pid and pid_alive(pid) and running["worker"] == "first"
        first.kill()
        wait_until(lambda: not pid_alive(pid), timeout=5, interval=0.05)  # PDEATHSIG
        killed_at = len(read_records(Path(running["run_dir"])))
        second = TrainerProcess("second", data_root, tmp_path, **short_lease)
        done = wait_state(api, j["id"], {"succeeded", "failed"})
        assert done["state"] == "succeeded", done["error"]
        assert done["worker"] == "second" and done["attempts"] == 2
        epochs_logged = [r["epoch"] for r in read_records(Path(done["run_dir"]))]
        # one record per epoch, in order, none repeated: the second run did not start over
        assert epochs_logged == sorted(set(epochs_logged)) and epochs_logged[-1] == epochs
        assert len(epochs_logged) >= epochs - 1 and killed_at >= 3
        log = (Path(done["run_dir"]) / "job.log").read_text()
        resumed = re.findall(r"resumed from \S+ at epoch (\d+)", log)
        assert len(resumed) == 1 and int(resumed[0]) in (killed_at, killed_at + 1), resumed
        assert 'lineinspect_training_claims_total{resumed="true"} 1.0' in second.metrics()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_graceful_stop_hands_the_job_back(
    api: str, data: Path, data_root: Path, tmp_path: Path
) -> None:
    _, j = submit(api, tiny_train_params(data, epochs=400))
    trainer = TrainerProcess("a", data_root, tmp_path, **FAST)
    running = wait_epoch(api, j["id"], 1)
    trainer.stop()  # SIGTERM
    back = job(api, j["id"])
    assert back["state"] == "queued" and back["worker"] is None, back
    assert not pid_alive(running["pid"])
    assert json.loads(json.dumps(back["progress"]))["epoch"] >= 1
    HTTP.delete(f"{api}/v1/jobs/{j['id']}")


def test_rest_refuses_bad_jobs_and_unknown_ids(api: str, data: Path) -> None:
    bad = HTTP.post(f"{api}/v1/jobs", json={"kind": "train", "params": {"data": "d", "out": "x"}})
    assert bad.status_code == 422 and "set by the worker" in bad.json()["message"]
    step = HTTP.post(f"{api}/v1/jobs", json={"kind": "gate", "params": {"candidate": "x"}})
    assert step.status_code == 400 and "pipeline steps only" in step.json()["message"]
    nodata = {"kind": "pipeline", "params": {"lineage": "tiny", "dataset": "nowhere"}}
    assert HTTP.post(f"{api}/v1/jobs", json=nodata).status_code == 404
    orphan = HTTP.post(
        f"{api}/v1/jobs", json={"kind": "train", "params": {"data": "d"}, "parent_id": 999}
    )
    assert orphan.status_code == 404
    assert HTTP.get(f"{api}/v1/jobs/999").status_code == 404
    assert HTTP.delete(f"{api}/v1/jobs/999").json()["error"] == "not_found"
    assert HTTP.get(f"{api}/v1/jobs", params={"state": "nope"}).status_code == 422
