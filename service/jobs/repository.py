"""Job rows: submit (idempotent), list, cancel, and the worker's side of the lease:
claim, renew, release, finish.

Claiming is one transaction that picks the oldest claimable job (queued, or running
with a lapsed lease) and marks it running for this worker until ``now + lease``. On
PostgreSQL the pick is ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers
never wait for each other; on SQLite the transaction starts with ``BEGIN IMMEDIATE``,
which takes the database's write lock first, so two claims are serialised. Every later
write of the worker (renew, release, finish) is conditional on ``worker = me AND state
= running``: a job cancelled meanwhile, or taken over after a lapsed lease, reports
"no longer yours", and the worker stops its child.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from service.config import Settings
from service.errors import Conflict, NotFound
from service.jobs.schema import LIVE, Job, JobKind, JobState, utcnow
from service.jobs.spec import RUNNABLE, JobRequest, idempotency_key
from service.store.db import engine_from_settings
from service.store.migrate import upgrade

RUNNING = JobState.RUNNING.value
QUEUED = JobState.QUEUED.value
OPEN = (QUEUED, RUNNING)


def lineage_lock_id(lineage: str) -> int:
    """A signed 64-bit advisory-lock id for a lineage's pipeline submissions."""
    digest = hashlib.sha256(b"lineinspect-pipeline:" + lineage.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobRepository:
    """All reads and writes of job rows, over one engine."""

    def __init__(self, engine: Engine, runs_root: Path, max_attempts: int = 3) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.runs_root = Path(runs_root)
        self.max_attempts = max_attempts

    # --- clients ------------------------------------------------------------------------
    def submit(
        self, req: JobRequest, snapshot: str | None, base_refs: dict[str, str]
    ) -> tuple[Job, bool]:
        """Queue a job, or return the live one with the same key; ``(job, created)``.

        A pipeline is submitted in a transaction that holds its lineage's lock (the
        database's write lock on SQLite, an advisory lock on PostgreSQL), so two
        submitters never both see "no pipeline of this lineage" and both queue one: a
        second one, for other work, is a :class:`Conflict` naming the live pipeline."""
        params = dict(req.params)
        key = idempotency_key(req.kind, params, snapshot, base_refs)
        lineage = str(params["lineage"]) if req.kind is JobKind.PIPELINE else None
        with self._write_transaction(lineage) as s:
            found = self._live_by_key(s, key)
            if found is not None:
                return found, False
            if lineage is not None:
                live = self._live_pipeline(s, lineage)
                if live is not None:
                    raise Conflict(
                        f"lineage {lineage!r} already has pipeline job {live.id} ({live.state}); "
                        "a lineage runs one pipeline at a time"
                    )
            if req.parent_id is not None and s.get(Job, req.parent_id) is None:
                raise NotFound(f"parent job {req.parent_id} does not exist")
            job = Job(
                kind=str(req.kind),
                params=params,
                snapshot=snapshot,
                base_refs=base_refs,
                idempotency_key=key,
                state=QUEUED,
                parent_id=req.parent_id,
                attempts=0,
                created_at=utcnow(),
            )
            s.add(job)
            try:
                s.commit()
            except IntegrityError:  # the same job submitted at the same moment
                s.rollback()
                found = self._live_by_key(s, key)
                if found is None:
                    raise
                return found, False
            return job, True

    @contextlib.contextmanager
    def _write_transaction(self, lineage: str | None) -> Iterator[Session]:
        with self.sessions() as s:
            if lineage is not None:
                if self.engine.dialect.name == "sqlite":
                    s.connection().exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    s.execute(select(func.pg_advisory_xact_lock(lineage_lock_id(lineage))))
            yield s

    @staticmethod
    def _live_pipeline(s: Session, lineage: str) -> Job | None:
        stmt = select(Job).where(Job.kind == JobKind.PIPELINE.value, Job.state.in_(OPEN))
        return next((j for j in s.scalars(stmt) if j.params.get("lineage") == lineage), None)

    def pipelines(self, lineage: str, limit: int = 1) -> list[Job]:
        """The newest pipeline jobs of ``lineage`` (any state)."""
        stmt = select(Job).where(Job.kind == JobKind.PIPELINE.value).order_by(Job.id.desc())
        out: list[Job] = []
        with self.sessions() as s:
            for j in s.scalars(stmt):
                if j.params.get("lineage") == lineage:
                    out.append(j)
                    if len(out) >= limit:
                        break
        return out

    @staticmethod
    def _live_by_key(s: Session, key: str) -> Job | None:
        stmt = select(Job).where(Job.idempotency_key == key, Job.state.in_(LIVE))
        return s.scalars(stmt.limit(1)).first()

    def get(self, job_id: int) -> Job:
        """One job; :class:`NotFound` when absent."""
        with self.sessions() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} does not exist")
            return job

    def list(
        self,
        states: Sequence[str] = (),
        kinds: Sequence[str] = (),
        parent_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Job], int]:
        """Jobs newest first, filtered; ``(page, total matching)``."""
        conds: list[Any] = []
        if states:
            conds.append(Job.state.in_(list(states)))
        if kinds:
            conds.append(Job.kind.in_(list(kinds)))
        if parent_id is not None:
            conds.append(Job.parent_id == parent_id)
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Job).where(*conds)) or 0
            page = s.scalars(
                select(Job).where(*conds).order_by(Job.id.desc()).limit(limit).offset(offset)
            ).all()
            return list(page), int(total)

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued or running job (and its unfinished steps). A running job's
        worker sees it on its next renewal and stops the child, keeping its checkpoint.
        Cancelling a cancelled job is a no-op; a finished one is a :class:`Conflict`."""
        now = utcnow()
        open_states = (QUEUED, RUNNING)
        with self.sessions() as s:
            for cond in (Job.id == job_id, Job.parent_id == job_id):
                s.execute(
                    update(Job)
                    .where(cond, Job.state.in_(open_states))
                    .values(state=JobState.CANCELLED.value, finished_at=now, lease_until=None)
                )
            s.commit()
        job = self.get(job_id)
        if job.state != JobState.CANCELLED.value:
            raise Conflict(f"job {job_id} is already {job.state}")
        return job

    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (every state present, zeros included)."""
        with self.sessions() as s:
            rows = s.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        counts = dict.fromkeys((st.value for st in JobState), 0)
        counts.update({str(state): int(n) for state, n in rows})
        return counts

    # --- workers ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _claim_transaction(self) -> Iterator[Session]:
        with self.sessions() as s:
            if self.engine.dialect.name == "sqlite":
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield s

    def claim(self, worker: str, lease_s: float) -> Job | None:
        """Take the oldest claimable job for ``worker`` until ``now + lease_s``, or None.
        A job whose lease lapsed ``max_attempts`` times is failed instead of retried."""
        now = utcnow()
        claimable = or_(Job.state == QUEUED, and_(Job.state == RUNNING, Job.lease_until < now))
        parent = aliased(Job)
        in_pipeline = (
            select(parent.id)
            .where(parent.id == Job.parent_id, parent.kind == JobKind.PIPELINE.value)
            .exists()
        )
        stmt = (
            select(Job)
            .where(claimable, Job.kind.in_([str(k) for k in RUNNABLE]), ~in_pipeline)
            .order_by(Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with self._claim_transaction() as s:
            while (job := s.scalars(stmt).first()) is not None:
                if job.state == RUNNING and job.attempts >= self.max_attempts:
                    job.state, job.finished_at = JobState.FAILED.value, now
                    job.error = f"lease lapsed {job.attempts} times (its worker died each time)"
                    job.lease_until = job.worker = job.pid = None
                    s.flush()
                    continue
                job.state, job.worker, job.pid = RUNNING, worker, None
                job.lease_until = now + timedelta(seconds=lease_s)
                job.attempts += 1
                job.started_at = job.started_at or now
                job.run_dir = job.run_dir or str(self.runs_root / f"job-{job.id}")
                break
            s.commit()
            return job

    def claim_step(self, job_id: int, worker: str, lease_s: float) -> bool:
        """Take a pipeline's step for the worker that holds the pipeline: a queued step,
        or a running one that is already this worker's or whose lease lapsed (its worker
        died: the step resumes from its checkpoint). False while another worker's lease
        still holds."""
        now = utcnow()
        free = or_(
            Job.state == QUEUED,
            and_(Job.state == RUNNING, or_(Job.lease_until < now, Job.worker == worker)),
        )
        with self.sessions() as s:
            job = s.get(Job, job_id)
            if job is None:
                return False
            res = s.execute(
                update(Job)
                .where(Job.id == job_id, free)
                .values(
                    state=RUNNING,
                    worker=worker,
                    pid=None,
                    lease_until=now + timedelta(seconds=lease_s),
                    attempts=Job.attempts + 1,
                    started_at=job.started_at or now,
                    run_dir=job.run_dir or str(self.runs_root / f"job-{job_id}"),
                )
            )
            s.commit()
            return bool(getattr(res, "rowcount", 0) == 1)

    def _owned(self, job_id: int, worker: str) -> Any:
        return and_(Job.id == job_id, Job.worker == worker, Job.state == RUNNING)

    def renew(
        self,
        job_id: int,
        worker: str,
        lease_s: float,
        progress: dict[str, Any] | None = None,
        pid: int | None = None,
    ) -> bool:
        """Extend the lease (and record progress); False when the job is no longer this
        worker's (cancelled, or taken over after a lapsed lease)."""
        values: dict[str, Any] = {"lease_until": utcnow() + timedelta(seconds=lease_s)}
        if progress is not None:
            values["progress"] = progress
        if pid is not None:
            values["pid"] = pid
        return self._update_owned(job_id, worker, values)

    def release(self, job_id: int, worker: str, progress: dict[str, Any] | None) -> bool:
        """Give a running job back to the queue (worker stopping): the next claim resumes
        it from its checkpoint. A hand-back is not a failed attempt: it is not counted."""
        values: dict[str, Any] = {
            "state": QUEUED,
            "worker": None,
            "lease_until": None,
            "pid": None,
            "attempts": Job.attempts - 1,
        }
        if progress is not None:
            values["progress"] = progress
        return self._update_owned(job_id, worker, values)

    def finish(
        self,
        job_id: int,
        worker: str,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        progress: dict[str, Any] | None = None,
        log_tail: str | None = None,
    ) -> bool:
        """Record the end of a job this worker runs; False when it was no longer its."""
        values: dict[str, Any] = {
            "state": state.value,
            "result": result,
            "error": error,
            "log_tail": log_tail,
            "finished_at": utcnow(),
            "lease_until": None,
            "pid": None,
        }
        if progress is not None:
            values["progress"] = progress
        return self._update_owned(job_id, worker, values)

    def _update_owned(self, job_id: int, worker: str, values: dict[str, Any]) -> bool:
        with self.sessions() as s:
            res = s.execute(update(Job).where(self._owned(job_id, worker)).values(**values))
            s.commit()
            return bool(getattr(res, "rowcount", 0) == 1)


def repository(settings: Settings, engine: Engine | None = None) -> JobRepository:
    """The jobs repository of these settings, on ``engine`` (the data store's, already
    migrated) or on a new engine whose schema is migrated to head first."""
    if engine is None:
        engine = engine_from_settings(settings)
        upgrade(engine)
    runs = settings.data_root.resolve() / "jobs"  # absolute: stored in rows, read by any worker
    return JobRepository(engine, runs, settings.trainer_max_attempts)
