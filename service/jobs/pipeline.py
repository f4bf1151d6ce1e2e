"""A ``pipeline`` job: snapshot → train teacher → distil student → evaluate → export →
gate → register → promotion policy, each step a child job (``parent_id``) whose JSON
result the next step reads.

The worker that claimed the pipeline runs its steps itself, one after another: the
training steps as child processes of the training CLI (like any train/distil/evaluate/
export job), the torch-free ones in a thread of the worker. Steps are never claimed from
the queue by other workers. Each step's request is computed from the pipeline and the
previous steps' results, and its idempotency key includes ``<pipeline>/<step>``, so a
pipeline resumed after its worker died finds its steps again: a succeeded step is not
rerun (its result is in the database), a running one resumes from its checkpoint.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from service.errors import LineInspectError
from service.jobs.pipeline_spec import PipelineSpec
from service.jobs.schema import Job, JobKind, JobState, utcnow
from service.jobs.spec import FILE_PIN, STEP_PIN, JobRequest, pin_base_refs

if TYPE_CHECKING:
    from service.jobs.worker import TrainingWorker

log = logging.getLogger(__name__)

#: The job kind of each step.
KINDS = {
    "snapshot": JobKind.SNAPSHOT,
    "evaluate": JobKind.EVALUATE,
    "export": JobKind.EXPORT,
    "gate": JobKind.GATE,
    "register": JobKind.REGISTER,
    "policy": JobKind.POLICY,
}
IN_PROCESS = frozenset({JobKind.SNAPSHOT, JobKind.GATE, JobKind.REGISTER, JobKind.POLICY})


class StepFailed(Exception):
    """A step ended without success; the pipeline fails with this message."""


class Stopped(Exception):
    """The pipeline is no longer this worker's (``outcome``: lost or released)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def checkpoint(result: dict[str, Any]) -> str:
    """The checkpoint a train/distil step hands on: its best, else its last."""
    ck = result.get("best_checkpoint") or result.get("last_checkpoint")
    if not ck:
        raise StepFailed(f"the run in {result.get('run_dir')} left no checkpoint")
    return str(ck)


class PipelineRunner:
    """Runs one claimed pipeline job on ``worker`` to its end (or until it is lost)."""

    def __init__(self, worker: TrainingWorker, job: Job) -> None:
        self.worker, self.job, self.repo = worker, job, worker.repo
        self.settings = worker.settings
        self.jobs: dict[str, int] = dict((job.progress or {}).get("jobs") or {})
        self.progress: dict[str, Any] = {}

    # --- the chain ----------------------------------------------------------------------
    def run(self) -> str:
        """Run every step; returns the outcome label (succeeded, failed, lost, released)."""
        job = self.job
        try:
            spec = PipelineSpec.model_validate(job.params)
            names = spec.steps()
            results: dict[str, dict[str, Any]] = {}
            for i, name in enumerate(names):
                results[name] = self._step(i, len(names), name, self._request(spec, name, results))
        except Stopped as stop:
            if stop.outcome == "released":
                self._release()
            return stop.outcome
        except (StepFailed, LineInspectError, ValueError) as exc:
            return self._finish(JobState.FAILED, error=str(exc)[:2000])
        return self._finish(JobState.SUCCEEDED, result=self._summary(spec, results))

    def _summary(self, spec: PipelineSpec, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        gate = results["gate"]
        out: dict[str, Any] = {
            "lineage": spec.lineage,
            "snapshot": results["snapshot"]["fingerprint"],
            "jobs": self.jobs,
            "student_checkpoint": checkpoint(results["student"]),
            "gate": {"passed": gate["passed"], "production": gate["production"]},
            "gate_report": gate["report"],
            "registered": {k: results["register"][k] for k in ("name", "version")},
            "policy": results["policy"],
        }
        if "evaluate" in results:
            out["evaluation"] = results["evaluate"].get("report")
        return out

    def _request(
        self, spec: PipelineSpec, name: str, results: dict[str, dict[str, Any]]
    ) -> tuple[JobKind, dict[str, Any]]:
        """The kind and parameters of step ``name``, from the previous steps' results."""
        pins = self.job.base_refs or {}

        def pinned(role_option: str, value: Any) -> Any:  # run the version the key names
            pin = pins.get(role_option)
            return value if pin is None or pin.startswith(FILE_PIN) else pin

        snap = results.get("snapshot", {})
        if name == "snapshot":
            return JobKind.SNAPSHOT, {"dataset": spec.dataset}
        if name == "teacher":
            opts = spec.options("teacher")
            if "init_from" in opts:
                opts["init_from"] = pinned("teacher_init_from", opts["init_from"])
            return JobKind.TRAIN, {**opts, "data": snap["data"]}
        if name == "student":
            opts = spec.options("student")
            if "init_from" in opts:
                opts["init_from"] = pinned("student_init_from", opts["init_from"])
            opts["data"] = snap["data"]
            if spec.student == "train":
                return JobKind.TRAIN, opts
            if spec.trains_teacher:
                opts["teacher"] = checkpoint(results["teacher"])
            else:
                opts["teacher"] = pinned("teacher_ref", spec.teacher_ref)
            return JobKind.DISTIL, opts
        student = checkpoint(results.get("student", {}))
        if name == "evaluate":
            return JobKind.EVALUATE, {"ckpt": student, "data": snap["data"], "no_onnx": True}
        if name == "export":
            return JobKind.EXPORT, {"ckpt": student}
        if name == "gate":
            return JobKind.GATE, {
                "lineage": spec.lineage,
                "candidate": results["export"]["export_dir"],
                "golden": snap["golden"],
                "latency_runs": spec.latency_runs,
            }
        if name == "register":
            return JobKind.REGISTER, {
                "lineage": spec.lineage,
                "export_dir": results["export"]["export_dir"],
                "gate_report": results["gate"]["path"],
                "dataset": spec.dataset,
                "snapshot": snap["fingerprint"],
                "teacher": pins.get("teacher_ref") or results.get("teacher", {}).get("run_dir", ""),
            }
        return JobKind.POLICY, {
            "lineage": spec.lineage,
            "version": results["register"]["version"],
            "passed": results["gate"]["passed"],
            "gate_report": results["gate"]["path"],
        }

    # --- one step -----------------------------------------------------------------------
    def _step(self, i: int, n: int, name: str, request: tuple[JobKind, dict[str, Any]]) -> Any:
        kind, params = request
        req = JobRequest(kind=kind, params=params, snapshot=None, parent_id=self.job.id)
        base = {
            **pin_base_refs(params, self.worker.steps.registry),
            STEP_PIN: f"{self.job.id}/{name}",
        }
        step, _ = self.repo.submit(req, self.job.snapshot, base)
        self.jobs[name] = step.id
        self.progress = {"step": i + 1, "steps": n, "step_name": name, "step_job": step.id}
        if step.state == JobState.SUCCEEDED.value:
            log.info("pipeline %d: step %s (job %d) already done", self.job.id, name, step.id)
            return step.result or {}
        self._claim(step)
        log.info("pipeline %d: step %d/%d %s (job %d)", self.job.id, i + 1, n, name, step.id)
        step = self.repo.get(step.id)
        if kind in IN_PROCESS:
            self._in_process(step, kind)
        else:
            outcome = self.worker.run_child(step, self._renew)
            if outcome in ("lost", "released"):
                raise Stopped(outcome)
        done = self.repo.get(step.id)
        if done.state != JobState.SUCCEEDED.value:
            raise StepFailed(f"step {name} (job {done.id}) {done.state}: {done.error or ''}")
        return done.result or {}

    def _claim(self, step: Job) -> None:
        """Take the step; a dead worker's step is free once its lease lapses."""
        s = self.settings
        while not self.repo.claim_step(step.id, self.worker.worker_id, s.trainer_lease_s):
            current = self.repo.get(step.id)
            if JobState(current.state).terminal:
                raise StepFailed(f"step job {step.id} is {current.state}")
            if not self._renew(None) or self.worker.wait(s.trainer_poll_s):
                raise Stopped("released" if self.worker.stopping else "lost")

    def _in_process(self, step: Job, kind: JobKind) -> None:
        """Run a torch-free step in a thread, keeping both leases meanwhile."""
        s, wid = self.settings, self.worker.worker_id
        run_dir = Path(step.run_dir or self.repo.runs_root / f"job-{step.id}")
        run_dir.mkdir(parents=True, exist_ok=True)
        box: dict[str, Any] = {}
        fn = self.worker.steps.runner(kind)

        def target() -> None:
            try:
                box["result"] = fn(self.job.id, dict(step.params), run_dir)
            except Exception as exc:  # recorded as the step's failure
                log.exception("pipeline %d: step job %d failed", self.job.id, step.id)
                box["error"] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=target, name=f"step-{step.id}", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(s.trainer_poll_s)
            if not thread.is_alive():
                break
            ours = self.repo.renew(step.id, wid, s.trainer_lease_s) and self._renew(None)
            if not ours or self.worker.stopping:
                if self.worker.stopping:
                    self.repo.release(step.id, wid, None)
                raise Stopped("released" if self.worker.stopping else "lost")
        state = JobState.FAILED if "error" in box else JobState.SUCCEEDED
        self.repo.finish(step.id, wid, state, result=box.get("result"), error=box.get("error"))

    # --- the pipeline's own row ---------------------------------------------------------
    def _renew(self, child_progress: dict[str, object] | None) -> bool:
        """Renew the pipeline's lease with its progress: step i of n and the step's."""
        prog = {
            **self.progress,
            "step_progress": child_progress,
            "jobs": self.jobs,
            "updated_at": utcnow().isoformat(),
        }
        try:
            return self.repo.renew(
                self.job.id, self.worker.worker_id, self.settings.trainer_lease_s, prog
            )
        except SQLAlchemyError as exc:  # keep going: the step's own renewal decides
            log.warning("pipeline %d: cannot renew its lease (%s)", self.job.id, exc)
            return True

    def _release(self) -> None:
        try:
            self.repo.release(
                self.job.id, self.worker.worker_id, {**self.progress, "jobs": self.jobs}
            )
        except SQLAlchemyError:
            log.exception("pipeline %d: cannot hand it back; its lease will lapse", self.job.id)

    def _finish(self, state: JobState, **kw: Any) -> str:
        prog = {**self.progress, "jobs": self.jobs, "updated_at": utcnow().isoformat()}
        if not self.repo.finish(self.job.id, self.worker.worker_id, state, progress=prog, **kw):
            return "lost"
        log.info("pipeline %d %s %s", self.job.id, state.value, kw.get("error") or "")
        return state.value
