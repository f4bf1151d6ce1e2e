"""The training worker loop: claim a job, run it as a child process, keep its lease,
record its progress, and end it.

One job at a time. Every ``trainer_poll_s`` the worker renews the lease with the latest
progress (read from the run's ``results.jsonl``); a renewal that finds the job no
longer its own (cancelled, or taken over) stops the child at once, which keeps its
last checkpoint. A worker asked to stop gives its job back to the queue, so the next
claim resumes it. A crash of the child fails the job, never the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from service.config import Settings, child_environment
from service.jobs import command
from service.jobs.metrics import TrainingMetrics
from service.jobs.pipeline import PipelineRunner
from service.jobs.repository import JobRepository
from service.jobs.runner import Child
from service.jobs.schema import Job, JobKind, JobState
from service.jobs.steps import StepContext

log = logging.getLogger(__name__)

#: Called at each renewal of a child with its progress; False stops the child.
Renewal = Callable[[dict[str, object] | None], bool]

#: Environment variables that size a child's CPU thread pools.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_worker_id() -> str:
    """``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def child_threads(settings: Settings) -> int:
    """``trainer_threads``, or half the usable cores (at least 1)."""
    if settings.trainer_threads:
        return settings.trainer_threads
    return max(1, len(os.sched_getaffinity(0)) // 2)


class TrainingWorker:
    """Runs jobs from ``repo`` until :meth:`stop`. Call :meth:`run` in one long-lived
    thread: the child is killed by the kernel when the thread that started it ends."""

    def __init__(
        self,
        repo: JobRepository,
        settings: Settings,
        metrics: TrainingMetrics,
        worker_id: str | None = None,
    ) -> None:
        self.repo, self.settings, self.metrics = repo, settings, metrics
        self.worker_id = worker_id or settings.trainer_worker_id or default_worker_id()
        self.threads = child_threads(settings)
        self._stop = threading.Event()
        self.healthy = True  # False while the database is unreachable
        self.steps = StepContext(settings, metrics)

    def stop(self) -> None:
        """Ask the loop to end: the running job is handed back to the queue."""
        self._stop.set()

    def run(self) -> None:
        """Claim and run jobs until stopped."""
        s = self.settings
        log.info(
            "training worker %s: child threads %d, nice %d, lease %.0fs",
            self.worker_id,
            self.threads,
            s.trainer_nice,
            s.trainer_lease_s,
        )
        while not self._stop.is_set():
            try:
                job = self.repo.claim(self.worker_id, s.trainer_lease_s)
                self.healthy = True
            except SQLAlchemyError as exc:
                self.healthy = False
                log.warning("cannot claim a job (database unreachable?): %s", exc)
                job = None
            if job is None:
                self._stop.wait(s.trainer_poll_s)
                continue
            try:
                self._run(job)
            except SQLAlchemyError:
                log.exception("job %d: database error; its lease will lapse", job.id)
            except Exception as exc:  # e.g. the run directory cannot be created
                log.exception("job %d could not run", job.id)
                self._fail(job, f"the worker could not run it: {exc}")
            finally:
                self._idle()

    def _fail(self, job: Job, error: str) -> None:
        try:
            self.repo.finish(job.id, self.worker_id, JobState.FAILED, error=error[:2000])
        except SQLAlchemyError:
            log.exception("job %d: cannot record its failure; its lease will lapse", job.id)

    def _idle(self) -> None:
        m = self.metrics
        m.running.set(0)
        m.job_id.set(0)
        for g in (m.epoch, m.epochs, m.eta):
            g.set(0)

    def _env(self) -> dict[str, str]:
        env = dict.fromkeys(THREAD_ENV, str(self.threads))
        env["LINEINSPECT_REGISTRY_ROOT"] = str(self.settings.registry_root)
        env["PYTHONUNBUFFERED"] = "1"
        return child_environment(env)

    def _run(self, job: Job) -> None:
        m, started = self.metrics, time.monotonic()
        if job.kind == JobKind.PIPELINE.value:
            m.running.set(1)
            m.job_id.set(job.id)
            outcome = PipelineRunner(self, job).run()
        else:
            outcome = self.run_child(job)
        m.last_duration.labels(job.kind).set(time.monotonic() - started)
        m.finished.labels(job.kind, outcome).inc()

    @property
    def stopping(self) -> bool:
        """Whether the worker was asked to stop."""
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the worker was asked to stop meanwhile."""
        return self._stop.wait(seconds)

    def run_child(self, job: Job, also: Renewal | None = None) -> str:
        """Run a claimed train/distil/evaluate/export job as a child process until it
        ends; ``also`` is called with its progress at each renewal and returns whether
        the child should go on (a pipeline renews itself there). Returns the outcome."""
        s, m = self.settings, self.metrics
        run_dir = Path(job.run_dir or self.repo.runs_root / f"job-{job.id}")
        run_dir.mkdir(parents=True, exist_ok=True)
        resumed = (run_dir / "last.pt").is_file()  # --resume continues from it
        m.claims.labels(str(resumed).lower()).inc()
        m.running.set(1)
        m.job_id.set(job.id)
        args = command.child_args(job, run_dir, self.threads, s.registry_root)
        log.info(
            "job %d (%s, attempt %d) in %s: lineinspect %s",
            job.id,
            job.kind,
            job.attempts,
            run_dir,
            " ".join(args),
        )
        program = [sys.executable, "-m", "service.cli", *args]
        child = Child(program, self._env(), run_dir / command.LOG, s.trainer_nice)
        return self._watch(job, run_dir, child, also)

    def _watch(self, job: Job, run_dir: Path, child: Child, also: Renewal | None = None) -> str:
        """Keep the lease until the child ends; returns the outcome label."""
        s = self.settings
        pid: int | None = child.pid
        renewed = time.monotonic()
        while (rc := child.poll()) is None:
            prog = self._progress(job, run_dir)
            try:
                ours = self.repo.renew(job.id, self.worker_id, s.trainer_lease_s, prog, pid)
                renewed, pid, self.healthy = time.monotonic(), None, True
            except SQLAlchemyError as exc:  # keep training while the lease still holds
                self.healthy = False
                ours = time.monotonic() - renewed < s.trainer_lease_s
                log.warning(
                    "job %d: cannot renew its lease (%s)%s",
                    job.id,
                    exc,
                    "" if ours else "; it has lapsed",
                )
            if ours and also is not None:
                ours = also(prog)
            if not ours:
                log.warning(
                    "job %d is no longer ours (cancelled, taken over or lapsed): stopping its "
                    "child; the checkpoint stays in %s",
                    job.id,
                    run_dir,
                )
                child.stop(s.trainer_stop_grace_s)
                return "lost"
            if self._stop.wait(s.trainer_poll_s):
                child.stop(s.trainer_stop_grace_s)
                try:
                    self.repo.release(job.id, self.worker_id, self._progress(job, run_dir))
                except SQLAlchemyError:
                    log.exception("job %d: cannot hand it back; its lease will lapse", job.id)
                log.info("job %d handed back to the queue (worker stopping)", job.id)
                return "released"
        child.close()
        prog, tail = self._progress(job, run_dir), command.log_tail(run_dir)
        if rc == 0:
            state, error, res = JobState.SUCCEEDED, None, command.result(job, run_dir)
        else:
            last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), "")
            state, error, res = JobState.FAILED, f"exit status {rc}: {last}"[:2000], None
        if not self.repo.finish(
            job.id, self.worker_id, state, result=res, error=error, progress=prog, log_tail=tail
        ):
            return "lost"
        log.info("job %d %s", job.id, state.value if rc == 0 else f"failed: {error}")
        return state.value

    def _progress(self, job: Job, run_dir: Path) -> dict[str, object] | None:
        prog = command.progress(job, run_dir)
        if prog is not None:
            m = self.metrics
            m.epoch.set(float(prog["epoch"]))
            m.epochs.set(float(prog["epochs"]))
            m.eta.set(float(prog["eta_s"] or 0))
        return prog
