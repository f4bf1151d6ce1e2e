"""``/v1/jobs``: submit, list, show, cancel jobs and read their logs.

One router, so the ``admin`` scope is one dependency added in one place. The routes are
plain functions: FastAPI runs them in its thread pool, so database work never holds up
the event loop that answers inspections.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import Ctx
from service.api.errors import error_responses
from service.jobs import command
from service.jobs.repository import JobRepository, repository
from service.jobs.schema import Job, JobKind, JobState
from service.jobs.spec import JobRequest, resolve_request
from service.store.db import MAX_INT

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobOut(BaseModel):
    """A job as stored."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: JobKind
    state: JobState
    params: dict[str, Any]
    snapshot: str | None
    base_refs: dict[str, str]
    idempotency_key: str
    parent_id: int | None
    progress: dict[str, Any] | None = Field(
        description="epoch, epochs, losses, metrics (last evaluation), eta_s, updated_at; "
        "a prune job's also its stage (sparse, finetune)"
    )
    result: dict[str, Any] | None = Field(
        description="run_dir, best/last checkpoint paths, epochs, best metrics; or a report; "
        "a prune job's export_dir, metrics and pruning record"
    )
    error: str | None
    run_dir: str | None
    worker: str | None
    pid: int | None
    lease_until: datetime | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


def get_repo(request: Request, ctx: Ctx) -> JobRepository:
    """The app's :class:`JobRepository`, created on first use on the data store's engine
    (one database, migrated once at start-up)."""
    repo: JobRepository | None = getattr(request.app.state, "jobs_repo", None)
    if repo is None:
        engine = request.app.state.store.engine
        repo = request.app.state.jobs_repo = repository(ctx.settings, engine)
    return repo


Repo = Annotated[JobRepository, Depends(get_repo)]
JobId = Annotated[int, PathParam(ge=1, le=MAX_INT)]


@router.post(
    "",
    response_model=JobOut,
    status_code=201,
    responses={
        200: {"model": JobOut, "description": "the same job, already asked"},
        # a kind not runnable here; no such parent job or dataset; a lineage's pipeline live
        **error_responses(400, 404, 409),
    },
)
def submit_job(
    body: JobRequest,
    request: Request,
    repo: Repo,
    response: Response,
    ctx: Ctx,
) -> JobOut:
    """Queue a job. Asking again for the same work (kind, parameters, snapshot, base
    refs) answers 200 with the existing job instead of training twice. A pipeline's
    snapshot is its dataset's content now; 409 while its lineage has another pipeline
    queued or running."""
    snapshot, base = resolve_request(body, ctx.registry, request.app.state.store)
    job, created = repo.submit(body, snapshot, base)
    if not created:
        response.status_code = 200
    return JobOut.model_validate(job)


@router.get("", response_model=JobPage)
def list_jobs(
    repo: Repo,
    state: Annotated[list[JobState] | None, Query()] = None,
    kind: Annotated[list[JobKind] | None, Query()] = None,
    parent_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> JobPage:
    """Jobs newest first; filter by state and kind (repeatable) or parent."""
    jobs, total = repo.list(
        [s.value for s in state or ()], [k.value for k in kind or ()], parent_id, limit, offset
    )
    return JobPage(
        jobs=[JobOut.model_validate(j) for j in jobs], total=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(404))
def show_job(job_id: JobId, repo: Repo) -> JobOut:
    """One job with its progress and result."""
    return JobOut.model_validate(repo.get(job_id))


@router.delete("/{job_id}", response_model=JobOut, responses=error_responses(404, 409))
def cancel_job(job_id: JobId, repo: Repo) -> JobOut:
    """Cancel a queued or running job; a running one stops within seconds and keeps its
    checkpoint. 409 when it has already finished."""
    return JobOut.model_validate(repo.cancel(job_id))


@router.get("/{job_id}/log", response_class=PlainTextResponse, responses=error_responses(404))
def job_log(
    job_id: JobId, repo: Repo, max_bytes: Annotated[int, Query(ge=1, le=2**20)] = 16384
) -> str:
    """The tail of the job's log: the run directory's file when this host can read it,
    else the tail stored when the job ended."""
    return tail_of(repo.get(job_id), max_bytes)


def tail_of(job: Job, max_bytes: int) -> str:
    """The log tail of ``job`` (see :func:`job_log`)."""
    if job.run_dir and (Path(job.run_dir) / command.LOG).is_file():
        return command.log_tail(Path(job.run_dir), max_bytes)
    return job.log_tail or ""
