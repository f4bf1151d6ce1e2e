"""Jobs without a worker: the idempotency key, request validation, the state machine of
a row (submit, claim, renew, release, finish, cancel), lease expiry and take-over, the
command line a job becomes and the progress read back from a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.errors import Conflict, InvalidInput, NotFound
from service.jobs import command
from service.jobs.repository import JobRepository
from service.jobs.schema import JobState
from service.jobs.spec import (
    JobRequest,
    check_runnable,
    data_fingerprint,
    idempotency_key,
    pin_base_refs,
)
from service.registry import Registry
from service.store.db import make_engine
from service.store.migrate import upgrade

PARAMS = {"data": "/d/data.yaml", "epochs": 3, "arch": "tiny"}


@pytest.fixture
def repo(tmp_path: Path) -> JobRepository:
    engine = make_engine(tmp_path / "var", None)
    upgrade(engine)
    return JobRepository(engine, tmp_path / "var" / "jobs", max_attempts=2)


def submit(repo: JobRepository, **params: object) -> tuple[int, bool]:
    req = JobRequest(kind="train", params={**PARAMS, **params})
    job, created = repo.submit(req, "snap-1", {})
    return job.id, created


def test_idempotency_key_is_canonical_and_covers_every_input() -> None:
    base = idempotency_key("train", {"a": 1, "b": [1, 2]}, "s", {"init_from": "m:1"})
    assert base == idempotency_key("train", {"b": [1, 2], "a": 1}, "s", {"init_from": "m:1"})
    others = {
        idempotency_key("distil", {"a": 1, "b": [1, 2]}, "s", {"init_from": "m:1"}),
        idempotency_key("train", {"a": 2, "b": [1, 2]}, "s", {"init_from": "m:1"}),
        idempotency_key("train", {"a": 1, "b": [1, 2]}, "t", {"init_from": "m:1"}),
        idempotency_key("train", {"a": 1, "b": [1, 2]}, "s", {"init_from": "m:2"}),
    }
    assert base not in others and len(others) == 4


def test_requests_are_validated() -> None:
    with pytest.raises(ValidationError, match="set by the worker"):
        JobRequest(kind="train", params={**PARAMS, "out": "/x"})
    with pytest.raises(ValidationError, match="snake_case"):
        JobRequest(kind="train", params={**PARAMS, "Bad-Name": 1})
    with pytest.raises(ValidationError, match="snake_case"):
        JobRequest(kind="train", params={**PARAMS, "epochs\n": 1})
    # what the schema does not say is a 400 (InvalidInput), checked before resolving
    with pytest.raises(InvalidInput, match="pipeline steps only"):
        check_runnable(JobRequest(kind="gate", params={"candidate": "x"}))
    with pytest.raises(InvalidInput, match=r"need the parameters \['lineage', 'dataset'\]"):
        check_runnable(JobRequest(kind="pipeline"))
    with pytest.raises(InvalidInput, match="teacher_ref"):
        check_runnable(
            JobRequest(kind="pipeline", params={"lineage": "m", "dataset": "d", "teacher": "ref"})
        )
    with pytest.raises(InvalidInput, match="set by the pipeline"):
        check_runnable(
            JobRequest(
                kind="pipeline", params={"lineage": "m", "dataset": "d", "student_data": "x"}
            )
        )
    check_runnable(JobRequest(kind="pipeline", params={"lineage": "m", "dataset": "d"}))
    with pytest.raises(InvalidInput, match="teacher"):
        check_runnable(JobRequest(kind="distil", params={"data": "/d.yaml"}))
    check_runnable(JobRequest(kind="train", params=PARAMS))


def test_base_refs_pin_registry_versions_and_files(tiny_registry: Registry, tmp_path: Path) -> None:
    ck = tmp_path / "w.pt"
    ck.write_bytes(b"x")
    pins = pin_base_refs({"init_from": "tiny", "teacher": str(ck)}, tiny_registry)
    assert pins["init_from"] == "tiny:1"  # the production alias, pinned
    assert pins["teacher"].startswith(f"file:{ck.resolve()}@1:")
    assert pin_base_refs({"init_from": "nowhere"}, tiny_registry) == {"init_from": "nowhere"}


def test_data_fingerprint_follows_the_files(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"1")
    data = tmp_path / "data.yaml"
    data.write_text("path: .\ntrain: images\nnames: [a]\n")
    first = data_fingerprint(data)
    assert first == data_fingerprint(data) and first is not None
    (tmp_path / "images" / "b.png").write_bytes(b"2")
    assert data_fingerprint(data) != first
    assert data_fingerprint(tmp_path / "absent.yaml") is None


def test_submitting_twice_returns_the_live_job(repo: JobRepository) -> None:
    first, created = submit(repo)
    again, created_again = submit(repo)
    assert created and not created_again and again == first
    other, created_other = submit(repo, epochs=4)
    assert created_other and other != first
    repo.cancel(first)  # a cancelled job may be asked again: a new row
    third, created_third = submit(repo)
    assert created_third and third not in (first, other)


def test_claim_renew_finish(repo: JobRepository) -> None:
    job_id, _ = submit(repo)
    job = repo.claim("w1", 30)
    assert job is not None and job.id == job_id and job.state == "running"
    assert job.attempts == 1 and job.run_dir and job.run_dir.endswith(f"job-{job_id}")
    assert repo.claim("w2", 30) is None  # leased: nobody else gets it
    assert repo.renew(job_id, "w1", 30, {"epoch": 1}, pid=123)
    assert not repo.renew(job_id, "w2", 30)  # not w2's
    assert repo.get(job_id).progress == {"epoch": 1} and repo.get(job_id).pid == 123
    assert repo.finish(job_id, "w1", JobState.SUCCEEDED, result={"run_dir": "x"})
    done = repo.get(job_id)
    assert done.state == "succeeded" and done.result == {"run_dir": "x"}
    assert done.lease_until is None and done.finished_at is not None
    assert not repo.renew(job_id, "w1", 30)
    with pytest.raises(Conflict, match="already succeeded"):
        repo.cancel(job_id)
    assert repo.count_by_state()["succeeded"] == 1


def test_cancel_reaches_the_worker_through_its_renewal(repo: JobRepository) -> None:
    queued, _ = submit(repo, epochs=1)
    running, _ = submit(repo, epochs=2)
    assert repo.cancel(queued).state == "cancelled"
    assert repo.cancel(queued).state == "cancelled"  # again: a no-op
    job = repo.claim("w1", 30)
    assert job is not None and job.id == running
    repo.cancel(running)
    assert not repo.renew(running, "w1", 30)  # the worker stops its child on this
    assert not repo.finish(running, "w1", JobState.SUCCEEDED)  # and cannot overwrite it
    assert repo.get(running).state == "cancelled"
    with pytest.raises(NotFound):
        repo.cancel(999)


def test_a_lapsed_lease_is_taken_over_then_failed_after_max_attempts(repo: JobRepository) -> None:
    job_id, _ = submit(repo)
    assert repo.claim("w1", -1) is not None  # a lease already lapsed: w1 "died"
    taken = repo.claim("w2", -1)
    assert taken is not None and taken.id == job_id and taken.worker == "w2"
    assert taken.attempts == 2 and taken.run_dir == repo.get(job_id).run_dir
    assert not repo.renew(job_id, "w1", 30)  # w1, back from a stall, has lost it
    assert repo.claim("w3", 30) is None  # max_attempts=2: failed, not retried
    failed = repo.get(job_id)
    assert failed.state == "failed" and "lease lapsed 2 times" in (failed.error or "")


def test_release_queues_the_job_for_the_next_claim(repo: JobRepository) -> None:
    job_id, _ = submit(repo)
    assert repo.claim("w1", 30) is not None
    assert repo.release(job_id, "w1", {"epoch": 2})
    again = repo.claim("w2", 30)
    assert again is not None and again.id == job_id and again.progress == {"epoch": 2}
    assert again.attempts == 1  # a hand-back is not a failed attempt


def test_list_filters_and_pages(repo: JobRepository) -> None:
    ids = [submit(repo, epochs=e)[0] for e in range(1, 6)]
    repo.cancel(ids[0])
    page, total = repo.list(states=["queued"], limit=2)
    assert total == 4 and [j.id for j in page] == [ids[4], ids[3]]
    page, total = repo.list(limit=2, offset=4)
    assert total == 5 and [j.id for j in page] == [ids[0]]


def test_child_args_map_params_to_the_training_cli(repo: JobRepository, tmp_path: Path) -> None:
    req = JobRequest(
        kind="distil",
        params={
            "data": "d.yaml",
            "teacher": "t",
            "no_adaptive": True,
            "augment_x": False,
            "kd_gain": ["fg=1", "bg=2"],
        },
    )
    job, _ = repo.submit(req, None, {"teacher": "t:3"})
    args = command.child_args(job, tmp_path, 2, Path("/reg"))
    assert args[:6] == ["distil", "--out", str(tmp_path), "--resume", "--registry", "/reg"]
    assert args[6:8] == ["--threads", "2"]
    assert "--no-adaptive" in args and "--augment-x" not in args
    assert args[args.index("--teacher") + 1] == "t:3"  # the pinned version runs
    assert args.count("--kd-gain") == 2
    ev, _ = repo.submit(
        JobRequest(kind="evaluate", params={"ckpt": "m.onnx", "data": "d"}), None, {}
    )
    assert command.child_args(ev, tmp_path, 1, Path("/r"))[:4] == [
        "val",
        "m.onnx",
        "--json-out",
        str(tmp_path / "report.json"),
    ]


def test_progress_from_the_results_file(repo: JobRepository, tmp_path: Path) -> None:
    job_id, _ = submit(repo, epochs=10)
    job = repo.get(job_id)
    assert command.progress(job, tmp_path) is None
    recs = [
        {"epoch": 1, "time_s": 2.0, "loss_box": 0.5, "loss_weights": {"box": 1}},
        {"epoch": 2, "time_s": 4.0, "loss_box": 0.4, "map50": 0.3, "map50_95": 0.1},
    ]
    text = "\n".join(json.dumps(r) for r in recs) + '\n{"epoch": 3, "ti'  # torn last line
    (tmp_path / "results.jsonl").write_text(text)
    p = command.progress(job, tmp_path)
    assert p is not None and p["epoch"] == 2 and p["epochs"] == 10
    assert p["losses"] == {"box": 0.4} and p["metrics"] == {
        "epoch": 2,
        "map50": 0.3,
        "map50_95": 0.1,
    }
    assert p["eta_s"] == 8 * 3.0


def test_a_prune_jobs_stages_count_as_one_run(repo: JobRepository, tmp_path: Path) -> None:
    params = {"from": "m:1", "data": "d.yaml", "ratio": 0.6, "sparse_epochs": 4}
    job, _ = repo.submit(JobRequest(kind="prune", params=params), None, {"from": "m:2"})
    args = command.child_args(job, tmp_path, 1, Path("/reg"))
    assert args[:6] == ["prune", "--out", str(tmp_path), "--resume", "--registry", "/reg"]
    assert args[args.index("--from") + 1] == "m:2" and "--ratio" in args
    assert command.progress(job, tmp_path) is None
    for stage, n in (("sparse", 4), ("finetune", 2)):
        (tmp_path / stage).mkdir()
        rows = [{"epoch": e, "time_s": 1.0, "loss_box": 0.1 * e} for e in range(1, n + 1)]
        (tmp_path / stage / "results.jsonl").write_text("\n".join(map(json.dumps, rows)))
    p = command.progress(job, tmp_path)  # 4 sparse + 2 of the default 30 fine-tuning epochs
    assert p is not None and (p["stage"], p["epoch"], p["epochs"]) == ("finetune", 6, 34)
    with pytest.raises(InvalidInput, match="'data', 'ratio'"):
        check_runnable(JobRequest(kind="prune", params={"from": "m"}))


def test_the_embedded_trainer_sees_the_servers_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from service.config import load_settings
    from service.jobs.embedded import settings_env

    given = load_settings(
        None,
        label_studio_webhook_secret="s3cret",
        class_thresholds={"a": 0.3},
        data_root=tmp_path,
        trainer_nice=5,
        models=["x", "y"],
    )
    for k, v in settings_env(given).items():
        monkeypatch.setenv(k, v)
    seen = load_settings(None)
    assert seen.model_dump() == given.model_dump()
    secret = seen.label_studio_webhook_secret
    assert secret is not None and secret.get_secret_value() == "s3cret"
