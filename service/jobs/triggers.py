"""Triggers (settings ``triggers``, per lineage): the training worker submits a pipeline
when enough labels came in since the dataset's last snapshot, or on a cron schedule.

:func:`decide` is pure (the clock is an argument); :class:`TriggerLoop` gathers its
inputs from the data store and the jobs table every ``trainer_poll_s`` in a thread of
the worker and submits. The one-pipeline-per-lineage rule is enforced by the submission
itself (:meth:`JobRepository.submit`, in one locked transaction), so two workers with
the same triggers never queue two pipelines of a lineage.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter
from sqlalchemy.exc import SQLAlchemyError

from service.config import Settings
from service.errors import Conflict, LineInspectError
from service.jobs.pipeline_spec import TriggerSpec
from service.jobs.repository import JobRepository
from service.jobs.schema import TERMINAL, JobKind, JobState, utcnow
from service.jobs.spec import JobRequest, resolve_request
from service.registry import Registry
from service.store import datasets, snapshots
from service.store.snapshots import NewLabels
from service.store.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """Whether to submit now, and why (or why not)."""

    fire: bool
    reason: str
    cron_tick: datetime | None = None


def cron_tick(expr: str, now: datetime) -> datetime:
    """The latest time at or before ``now`` that ``expr`` names (UTC)."""
    tick: datetime = croniter(expr, now).get_prev(datetime)
    return tick


def decide(
    spec: TriggerSpec,
    now: datetime,
    new: NewLabels,
    live: bool,
    last_pipeline_at: datetime | None,
    since: datetime,
) -> Decision:
    """The decision for one lineage. ``live``: a pipeline of it is queued or running;
    ``last_pipeline_at``: when its newest pipeline was submitted; ``since``: the cron
    reference when it has none (the loop's start), so a new worker waits for the next
    tick, while a worker that was down over a tick runs the one it missed."""
    if live:
        return Decision(False, "a pipeline of the lineage is queued or running")
    if last_pipeline_at is not None and now - last_pipeline_at < timedelta(
        seconds=spec.min_interval_s
    ):
        return Decision(False, f"the last pipeline is younger than {spec.min_interval_s:.0f}s")
    if spec.cron is not None:
        tick = cron_tick(spec.cron, now)
        if tick > (last_pipeline_at or since):
            return Decision(True, f"cron {spec.cron!r} at {tick.isoformat()}", tick)
    if spec.min_new_labels is None:
        return Decision(False, "no cron tick since the last pipeline")
    if new.count < spec.min_new_labels:
        return Decision(False, f"{new.count} of {spec.min_new_labels} new labels")
    short = {c: n for c, n in new.per_class.items() if n < spec.min_per_class}
    if short:
        return Decision(False, f"fewer than {spec.min_per_class} new labels of {sorted(short)}")
    if new.newest is not None and now - new.newest < timedelta(seconds=spec.debounce_s):
        return Decision(False, f"debouncing: the last label is younger than {spec.debounce_s:.0f}s")
    return Decision(True, f"{new.count} new labels since the last snapshot")


class TriggerLoop:
    """Evaluates every lineage's trigger each ``trainer_poll_s`` and submits pipelines."""

    def __init__(self, settings: Settings, repo: JobRepository, store: Store) -> None:
        self.settings, self.repo, self.store = settings, repo, store
        self.registry = Registry(settings.registry_root)
        self.started = utcnow()
        self._stop = threading.Event()
        self._fired_tick: dict[str, datetime] = {}
        self._tried_at: dict[str, datetime] = {}

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stop.set()

    def run(self) -> None:
        """Poll until stopped; a failure of one round is logged, never fatal."""
        while not self._stop.wait(self.settings.trainer_poll_s):
            try:
                self.poll()
            except Exception:  # never let one bad round end the loop
                log.exception("trigger round failed")

    def poll(self, now: datetime | None = None) -> list[int]:
        """One round over the lineages; the ids of the pipelines it queued."""
        queued: list[int] = []
        for lineage, spec in self.settings.triggers.items():
            try:
                job_id = self._one(lineage, spec, now or utcnow())
            except (LineInspectError, SQLAlchemyError) as exc:
                log.warning("trigger of %s: %s", lineage, exc)
                continue
            if job_id is not None:
                queued.append(job_id)
        return queued

    def _one(self, lineage: str, spec: TriggerSpec, now: datetime) -> int | None:
        tried = self._tried_at.get(lineage)
        if tried is not None and now - tried < timedelta(seconds=max(spec.min_interval_s, 1.0)):
            return None  # asked recently (e.g. the data equals a finished pipeline's)
        last = self.repo.pipelines(lineage, limit=1)
        live = bool(last) and JobState(last[0].state) not in TERMINAL
        with self.store.transaction() as s:
            new = snapshots.new_labels(s, datasets.get(s, spec.dataset))
        d = decide(spec, now, new, live, last[0].created_at if last else None, self.started)
        if not d.fire or (d.cron_tick is not None and self._fired_tick.get(lineage) == d.cron_tick):
            return None
        self._tried_at[lineage] = now
        if d.cron_tick is not None:
            self._fired_tick[lineage] = d.cron_tick
        req = JobRequest(
            kind=JobKind.PIPELINE, params=spec.params(lineage), snapshot=None, parent_id=None
        )
        snapshot, base = resolve_request(req, self.registry, self.store)
        try:
            job, created = self.repo.submit(req, snapshot, base)
        except Conflict as exc:  # another worker queued one first
            log.info("trigger of %s: %s", lineage, exc.message)
            return None
        if not created:
            log.info("trigger of %s (%s): the same work is job %d", lineage, d.reason, job.id)
            return None
        log.info("trigger of %s (%s): queued pipeline job %d", lineage, d.reason, job.id)
        return job.id
