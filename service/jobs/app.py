"""The training worker process: the worker loop in its own thread (and, when settings
``triggers`` name lineages, the trigger loop in another) plus a small HTTP
server on ``trainer_metrics_port``: ``/metrics`` (Prometheus), ``/healthz`` (liveness)
and ``/readyz`` (loop running, database reachable). SIGTERM or SIGINT stops the loop,
which stops the child and hands its job back to the queue, and then the server."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service import __version__
from service.config import Settings
from service.errors import NotReady
from service.jobs.metrics import TrainingMetrics
from service.jobs.repository import repository
from service.jobs.triggers import TriggerLoop
from service.jobs.worker import TrainingWorker

log = logging.getLogger(__name__)


def create_trainer_app(settings: Settings, worker_id: str | None = None) -> FastAPI:
    """The training worker as an ASGI app (see :func:`run_trainer`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repo = repository(settings)
        metrics = TrainingMetrics(repo.count_by_state, settings.triggers)
        worker = TrainingWorker(repo, settings, metrics, worker_id)
        thread = threading.Thread(target=worker.run, name="trainer", daemon=True)
        app.state.metrics, app.state.worker, app.state.thread = metrics, worker, thread
        triggers = TriggerLoop(settings, repo, worker.steps.store) if settings.triggers else None
        thread.start()
        if triggers is not None:
            threading.Thread(target=triggers.run, name="triggers", daemon=True).start()
        try:
            yield
        finally:
            if triggers is not None:
                triggers.stop()
            worker.stop()
            thread.join(settings.trainer_stop_grace_s + settings.trainer_poll_s + 10)
            worker.steps.close()
            repo.engine.dispose()

    app = FastAPI(title="lineinspect training worker", version=__version__, lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """200 while the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """200 while the worker loop runs and the database answers."""
        st = request.app.state
        ready = bool(st.thread.is_alive() and st.worker.healthy)
        return JSONResponse(
            {"ready": ready, "worker": st.worker.worker_id}, status_code=200 if ready else 503
        )

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        """Text exposition of this worker's metrics."""
        return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def run_trainer(settings: Settings, worker_id: str | None = None) -> None:
    """Run jobs until SIGINT/SIGTERM; the training side (torch) must be installed."""
    if importlib.util.find_spec("torch") is None:
        raise NotReady("'worker train' needs the training extra (pip install 'lineinspect[train]')")
    uvicorn.run(
        create_trainer_app(settings, worker_id),
        host=settings.host,
        port=settings.trainer_metrics_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
    )
