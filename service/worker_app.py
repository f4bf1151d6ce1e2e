"""The inference worker process: the Redis consumer plus its own small HTTP server.

``GET /metrics`` (Prometheus), ``/healthz`` (liveness) and ``/readyz`` (models warm and
Redis reachable) on ``worker_metrics_port``. The consumer lives in the app's lifespan,
so SIGTERM stops reading, delivers the frames in hand and only then exits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service import __version__
from service.config import Settings
from service.inspector import decode_executor, local_inspector
from service.manager import ModelManager
from service.metrics import Metrics
from service.queue.tasks import cancel_task
from service.queue.worker import InferenceWorker
from service.registry import Registry

log = logging.getLogger(__name__)


async def _warm_then_consume(manager: ModelManager, worker: InferenceWorker) -> None:
    try:
        await manager.start()
    except Exception:
        log.exception("model warm-up failed; the worker stays unready and reads nothing")
        return
    await worker.start()


def create_worker_app(settings: Settings, consumer: str | None = None) -> FastAPI:
    """The worker as an ASGI app; serve it with uvicorn (see :func:`run_worker`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = Registry(settings.registry_root)
        metrics = Metrics(settings.lines, settings.cameras, settings.max_label_values)
        executor = decode_executor(settings)
        inspector = local_inspector(settings, registry, metrics, executor)
        manager = inspector.manager
        worker = InferenceWorker(settings, inspector, metrics, consumer)
        app.state.metrics, app.state.manager, app.state.worker = metrics, manager, worker
        starter = asyncio.create_task(_warm_then_consume(manager, worker), name="worker-start")
        try:
            yield
        finally:
            await cancel_task(starter, timeout=30)
            await worker.stop()
            await manager.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="lineinspect worker", version=__version__, lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """200 while the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """200 once models are warm and the worker consumes from a reachable Redis."""
        state = request.app.state
        ready = bool(state.manager.ready and state.worker.ready)
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        """Text exposition of this worker's metrics."""
        return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def run_worker(settings: Settings, consumer: str | None = None) -> None:
    """Consume until SIGINT/SIGTERM, then drain."""
    uvicorn.run(
        create_worker_app(settings, consumer), host=settings.host,
        port=settings.worker_metrics_port, log_level=settings.log_level.lower(),
        access_log=False, timeout_graceful_shutdown=15,
    )  # fmt: skip
