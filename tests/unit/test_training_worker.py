"""The worker's watch over a child, with stand-in children (``sh``, ``sleep``): a crash
fails the job with its last words, a cancel stops the child, a database that stops
answering stops it once the lease can no longer be held, and a launched child dies
with its parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from service.config import load_settings
from service.jobs import command
from service.jobs.metrics import TrainingMetrics
from service.jobs.repository import JobRepository
from service.jobs.runner import Child
from service.jobs.schema import Job
from service.jobs.spec import JobRequest
from service.jobs.worker import TrainingWorker
from service.store.db import make_engine
from service.store.migrate import upgrade
from tests.support.servers import wait_until
from tests.support.trainers import pid_alive


@pytest.fixture
def repo(tmp_path: Path) -> JobRepository:
    engine = make_engine(tmp_path / "var", None)
    upgrade(engine)
    return JobRepository(engine, tmp_path / "var" / "jobs")


def worker(repo: JobRepository, **settings: Any) -> TrainingWorker:
    s = load_settings(None, trainer_poll_s=0.05, trainer_stop_grace_s=2, **settings)
    return TrainingWorker(repo, s, TrainingMetrics(repo.count_by_state), "w1")


def claimed(repo: JobRepository) -> tuple[Job, Path]:
    repo.submit(JobRequest(kind="train", params={"data": "d", "epochs": 2}), None, {})
    job = repo.claim("w1", 30)
    assert job is not None and job.run_dir
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True)
    return job, run_dir


def sh(script: str, run_dir: Path) -> Child:
    return Child(["/bin/sh", "-c", script], {}, run_dir / command.LOG, cwd=run_dir)


def test_a_crashing_child_fails_the_job_with_its_last_words(repo: JobRepository) -> None:
    job, run_dir = claimed(repo)
    w = worker(repo)
    assert (
        w._watch(
            job, run_dir, sh("echo starting; echo 'ValueError: bad data' >&2; exit 3", run_dir)
        )
        == "failed"
    )
    failed = repo.get(job.id)
    assert failed.state == "failed" and failed.error == "exit status 3: ValueError: bad data"
    assert "starting" in (failed.log_tail or "")


def test_a_succeeding_child_records_its_result(repo: JobRepository) -> None:
    job, run_dir = claimed(repo)
    line = '{"epoch": 2, "time_s": 0.1, "loss_box": 0.3}'
    assert (
        worker(repo)._watch(job, run_dir, sh(f"echo '{line}' > results.jsonl", run_dir))
        == "succeeded"
    )
    done = repo.get(job.id)
    assert done.state == "succeeded" and done.result and done.result["epochs"] == 2
    assert done.progress and done.progress["epoch"] == 2


def test_cancel_stops_the_child(repo: JobRepository) -> None:
    job, run_dir = claimed(repo)
    child = sh("exec sleep 60", run_dir)
    repo.cancel(job.id)
    t0 = time.monotonic()
    assert worker(repo)._watch(job, run_dir, child) == "lost"
    assert time.monotonic() - t0 < 5 and child.poll() is not None


class _Down(JobRepository):
    def renew(self, *args: Any, **kwargs: Any) -> bool:
        raise OperationalError("UPDATE", {}, Exception("database down"))


def test_the_child_is_stopped_once_the_lease_cannot_be_held(
    repo: JobRepository, tmp_path: Path
) -> None:
    job, run_dir = claimed(repo)
    down = _Down(repo.engine, repo.runs_root)
    child = sh("exec sleep 60", run_dir)
    w = worker(down, trainer_lease_s=1)
    t0 = time.monotonic()
    assert w._watch(job, run_dir, child) == "lost"
    assert 1 <= time.monotonic() - t0 < 6 and child.poll() is not None and not w.healthy


def test_a_launched_child_dies_with_its_parent(tmp_path: Path) -> None:
    script = (
        "import sys, time; from service.jobs.runner import Child; "
        "c = Child(['/bin/sleep', '60'], {}, None); print(c.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/bin/sleep"))
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    wait_until(lambda: not pid_alive(pid), timeout=5, interval=0.02)
