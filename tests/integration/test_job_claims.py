"""Concurrent claims on a real database: several worker processes race for the same
queue and every job is claimed exactly once (SQLite: BEGIN IMMEDIATE; PostgreSQL:
SELECT ... FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.jobs.repository import JobRepository
from service.jobs.spec import JobRequest
from service.store.db import make_engine
from service.store.migrate import upgrade
from tests.support.postgres_server import PostgresServer, postgres_server

JOBS, WORKERS = 40, 4
# Each process claims until the queue is empty and prints the ids it got.
CLAIMER = """
import json, sys
from pathlib import Path
from service.store.db import make_engine
from service.jobs.repository import JobRepository
url = sys.argv[2] if len(sys.argv) > 2 else None
repo = JobRepository(make_engine(Path(sys.argv[1]), url), Path(sys.argv[1]) / "jobs")
print("ready", flush=True)
sys.stdin.readline()  # start together
got = []
while (job := repo.claim(f"w-{sys.argv[1][-4:]}", 60)) is not None:
    got.append(job.id)
print(json.dumps(got))
"""


def race(data_root: Path, url: str | None) -> None:
    engine = make_engine(data_root, url)
    upgrade(engine)
    repo = JobRepository(engine, data_root / "jobs")
    ids = {
        repo.submit(JobRequest(kind="train", params={"data": "d", "epochs": i}), None, {})[0].id
        for i in range(JOBS)
    }
    args = [sys.executable, "-c", CLAIMER, str(data_root)] + ([url] if url else [])
    procs = [
        subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(WORKERS)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    claimed: list[int] = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        claimed += json.loads(out)
    assert sorted(claimed) == sorted(ids)  # all of them, none twice
    assert repo.count_by_state()["running"] == JOBS
    engine.dispose()


def test_sqlite_claims_are_exclusive(tmp_path: Path) -> None:
    race(tmp_path / "var", None)


__all__ = ["postgres_server"]  # the fixture


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


def test_postgresql_claims_are_exclusive(tmp_path: Path, pg_url: str) -> None:
    race(tmp_path / "var", pg_url)


def test_postgresql_keeps_one_live_job_per_key_and_hands_over_lapsed_leases(
    tmp_path: Path, pg_url: str
) -> None:
    engine = make_engine(tmp_path, pg_url)
    upgrade(engine)
    repo = JobRepository(engine, tmp_path / "jobs", max_attempts=2)
    req = JobRequest(kind="distil", params={"data": "d", "teacher": "t", "seed": 99})
    job, created = repo.submit(req, "snap", {"teacher": "t:1"})
    same, created_same = repo.submit(req, "snap", {"teacher": "t:1"})
    assert created and not created_same and same.id == job.id
    first = repo.claim("w1", -1)  # lapsed at once: w1 "died"
    assert first is not None and first.id == job.id and first.lease_until is not None
    assert first.lease_until.tzinfo is not None  # aware UTC on PostgreSQL too
    taken = repo.claim("w2", 60)
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    assert not repo.renew(job.id, "w1", 60) and repo.renew(job.id, "w2", 60, {"epoch": 1})
    repo.cancel(job.id)
    again, created_again = repo.submit(req, "snap", {"teacher": "t:1"})
    assert created_again and again.id != job.id  # the partial unique index let it in
    engine.dispose()
