"""Prometheus metrics of a training worker (prefix ``lineinspect_training_``).

``lineinspect_training_jobs{state}`` counts the jobs in the database at scrape time (a
custom collector, one ``GROUP BY`` per scrape), so every worker reports the same queue;
the others describe this worker's own job, and ``lineinspect_gate_*`` the gates of the
pipelines it ran, per lineage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.jobs.schema import JobKind, JobState

log = logging.getLogger(__name__)

#: How an attempt ends (``lineinspect_training_jobs_finished_total{state}``): the job's
#: end state, or ``released`` (worker stopping) / ``lost`` (cancelled or taken over).
OUTCOMES = (JobState.SUCCEEDED.value, JobState.FAILED.value, "released", "lost")

GATE_RESULTS = ("pass", "fail")


class _JobStates(Collector):
    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "lineinspect_training_jobs", "Jobs in the database by state.", labels=["state"]
        )
        try:
            counts = self._count()
        except Exception as exc:  # database down: the scrape still answers, without it
            log.warning("cannot count jobs for /metrics: %s", exc)
            return
        for state, n in sorted(counts.items()):
            fam.add_metric([state], n)
        yield fam

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


class TrainingMetrics:
    """The metrics of one training worker, in their own registry."""

    def __init__(
        self,
        count_by_state: Callable[[], dict[str, int]] | None = None,
        lineages: Iterable[str] = (),
    ) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        if count_by_state is not None:
            r.register(_JobStates(count_by_state))
        self.running = Gauge(
            "lineinspect_training_job_running", "1 while this worker runs a job.", registry=r
        )
        self.job_id = Gauge(
            "lineinspect_training_job_id", "Id of the job this worker runs (0: none).", registry=r
        )
        self.epoch = Gauge(
            "lineinspect_training_epoch", "Epochs completed by the current job.", registry=r
        )
        self.epochs = Gauge(
            "lineinspect_training_epochs_planned",
            "Epochs the current job trains for.",
            registry=r,
        )
        self.eta = Gauge(
            "lineinspect_training_eta_seconds",
            "Estimated time left of the current job.",
            registry=r,
        )
        self.claims = Counter(
            "lineinspect_training_claims",
            "Jobs claimed; resumed: the run has a checkpoint "
            "to continue from (a lapsed lease, a stopped worker).",
            ["resumed"],
            registry=r,
        )
        self.finished = Counter(
            "lineinspect_training_jobs_finished",
            "Jobs this worker ended, by kind and outcome "
            "(lost: cancelled or taken over while running).",
            ["kind", "state"],
            registry=r,
        )
        self.last_duration = Gauge(
            "lineinspect_training_last_job_duration_seconds",
            "Wall time of this worker's last finished attempt, by kind.",
            ["kind"],
            registry=r,
        )
        self.gate_last_passed = Gauge(
            "lineinspect_gate_last_passed",
            "1 when the lineage's last gate (of a pipeline this worker ran) passed, else 0.",
            ["lineage"],
            registry=r,
        )
        self.gate_failures_in_a_row = Gauge(
            "lineinspect_gate_failures_in_a_row",
            "Gates the lineage failed since its last pass (pipelines this worker ran).",
            ["lineage"],
            registry=r,
        )
        self.gate_runs = Counter(
            "lineinspect_gate_runs",
            "Gates run by this worker, by lineage and result (pass, fail).",
            ["lineage", "result"],
            registry=r,
        )
        for resumed in ("false", "true"):
            self.claims.labels(resumed)
        for kind in JobKind:  # increase() sees the first failure (alerts.yml)
            for outcome in OUTCOMES:
                self.finished.labels(kind.value, outcome)

        for lineage in lineages:  # the lineages with triggers: their series read 0 at once
            self.gate_failures_in_a_row.labels(lineage)
            for result in GATE_RESULTS:
                self.gate_runs.labels(lineage, result)

    def record_gate(self, lineage: str, passed: bool) -> None:
        """Count one gate of ``lineage`` and its result."""
        self.gate_runs.labels(lineage, "pass" if passed else "fail").inc()
        self.gate_last_passed.labels(lineage).set(1 if passed else 0)
        row = self.gate_failures_in_a_row.labels(lineage)
        if passed:
            row.set(0)
        else:
            row.inc()

    def exposition(self) -> bytes:
        """Text exposition of the registry."""
        return generate_latest(self.registry)
