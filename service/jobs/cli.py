"""``lineinspect jobs submit|list|show|cancel|logs`` (on the database named by the
settings, like ``models`` works on the registry) and ``lineinspect worker train``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from service.cli_options import cli_settings, config_option, registry_option
from service.config import Settings
from service.errors import LineInspectError
from service.jobs.api import JobOut, tail_of
from service.jobs.app import run_trainer
from service.jobs.repository import JobRepository, repository
from service.jobs.schema import JobKind, JobState
from service.jobs.spec import REQUIRED, JobRequest, resolve_request
from service.registry import Registry
from service.store import open_store


def _repo(settings: Settings) -> JobRepository:
    return repository(settings)


def _echo_job(job: Any) -> None:
    click.echo(JobOut.model_validate(job).model_dump_json(indent=2))


def _param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise click.BadParameter(f"{text!r}: use NAME=VALUE", param_hint="--param")
    return name.strip().replace("-", "_"), yaml.safe_load(raw) if raw else ""


@click.group()
def jobs() -> None:
    """Training jobs: submit, list, show, cancel, logs."""


@jobs.command("submit")
@click.argument("kind", type=click.Choice([str(k) for k in REQUIRED]))
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A training-CLI option by name (epochs=30, init_from=neu-det-student, "
    "no_adaptive=true); the value is read as YAML. Repeatable.",
)
@click.option("--snapshot", help="Snapshot fingerprint (default: from the data.yaml's files).")
@click.option("--parent", "parent_id", type=int, help="Parent (pipeline) job id.")
@config_option
@registry_option
def jobs_submit(
    kind: str,
    params: tuple[str, ...],
    snapshot: str | None,
    parent_id: int | None,
    config: Path | None,
    registry_root: Path | None,
) -> None:
    """Queue a KIND job (train, distil, evaluate, export, pipeline); the same work asked
    twice is one job. A pipeline: -p lineage=NAME -p dataset=DATASET (docs/learning.md)."""
    s = cli_settings(config, registry_root=registry_root)
    try:
        req = JobRequest(
            kind=JobKind(kind),
            params=dict(_param(p) for p in params),
            snapshot=snapshot,
            parent_id=parent_id,
        )
    except ValidationError as exc:
        raise click.ClickException("; ".join(e["msg"] for e in exc.errors())) from exc
    try:
        store = open_store(s) if req.kind is JobKind.PIPELINE else None
        try:
            snap, base = resolve_request(req, Registry(s.registry_root), store)
        finally:
            if store is not None:
                store.close()
        job, created = _repo(s).submit(req, snap, base)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{'queued' if created else 'already asked:'} job {job.id} ({job.state})", err=True)
    _echo_job(job)


@jobs.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in JobState]))
@click.option("--kind", "kinds", multiple=True, type=click.Choice([k.value for k in JobKind]))
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@config_option
def jobs_list(
    states: tuple[str, ...], kinds: tuple[str, ...], limit: int, config: Path | None
) -> None:
    """Jobs newest first: id, kind, state, epoch of total, worker, created."""
    page, total = _repo(cli_settings(config)).list(states, kinds, limit=limit)
    for j in page:
        p = j.progress or {}
        epoch = f"{p['epoch']}/{p['epochs']}" if "epoch" in p else "-"
        click.echo(
            f"{j.id}\t{j.kind}\t{j.state}\t{epoch}\t{j.worker or '-'}\t"
            f"{j.created_at:%Y-%m-%d %H:%M:%S}"
        )
    click.echo(f"{len(page)} of {total}", err=True)


def _get(config: Path | None, job_id: int) -> Any:
    try:
        return _repo(cli_settings(config)).get(job_id)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc


@jobs.command("show")
@click.argument("job_id", type=int)
@config_option
def jobs_show(job_id: int, config: Path | None) -> None:
    """One job as JSON (progress, result, error)."""
    _echo_job(_get(config, job_id))


@jobs.command("cancel")
@click.argument("job_id", type=int)
@config_option
def jobs_cancel(job_id: int, config: Path | None) -> None:
    """Cancel a queued or running job (a running one keeps its checkpoint)."""
    try:
        job = _repo(cli_settings(config)).cancel(job_id)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"job {job.id}: {job.state}")


@jobs.command("logs")
@click.argument("job_id", type=int)
@click.option("--bytes", "max_bytes", type=click.IntRange(1), default=16384, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
@config_option
def jobs_logs(job_id: int, max_bytes: int, follow: bool, config: Path | None) -> None:
    """The tail of a job's log (the training CLI's output, every attempt)."""
    repo = _repo(cli_settings(config))
    shown = ""
    while True:
        try:
            job = repo.get(job_id)
        except LineInspectError as exc:
            raise click.ClickException(exc.message) from exc
        text = tail_of(job, max_bytes)
        new = text[len(shown) :] if text.startswith(shown) else text
        if new:
            click.echo(new, nl=not new.endswith("\n"))
        shown = text
        if not follow or JobState(job.state).terminal:
            return
        time.sleep(1.0)


@click.command("train")
@config_option
@registry_option
@click.option("--metrics-port", type=int, help="Port of /metrics, /healthz, /readyz (9101).")
@click.option("--worker-id", help="Worker name in job rows (default <hostname>-<pid>).")
def worker_train(
    config: Path | None,
    registry_root: Path | None,
    metrics_port: int | None,
    worker_id: str | None,
) -> None:
    """Claim training jobs from the database and run them as child processes."""
    settings = cli_settings(
        config,
        registry_root=registry_root,
        trainer_metrics_port=metrics_port,
        trainer_worker_id=worker_id,
    )
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run_trainer(settings)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
