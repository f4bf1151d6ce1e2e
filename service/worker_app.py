"""The inference worker process: the Redis consumer plus its own small HTTP server.

``GET /metrics`` (Prometheus), ``/healthz`` (liveness) and ``/readyz`` (models warm and
Redis reachable) on ``worker_metrics_port``, under the API's HTTP connection limits
(service/http_limits.py: header size, header and body timeouts). The consumer lives
in the app's lifespan, so SIGTERM stops reading, delivers the frames in hand and only
then exits.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service import __version__
from service.api import shadow as shadow_api
from service.api.errors import install_error_handlers
from service.auth import http as auth_http
from service.config import Settings
from service.errors import LineInspectError
from service.http_limits import HttpLimits, limited_protocol
from service.inspector import decode_executor, local_inspector
from service.manager import ModelManager
from service.metrics import Metrics
from service.queue.tasks import cancel_task
from service.queue.worker import InferenceWorker
from service.registry import Registry
from service.shadow.serving import ShadowServing

log = logging.getLogger(__name__)


async def _warm_then_consume(manager: ModelManager, worker: InferenceWorker) -> None:
    try:
        if not manager.ready:
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
        # shadow serving runs here in this topology, after each reply is delivered
        shadow = (
            ShadowServing(settings, registry, manager, metrics) if settings.shadow_enabled else None
        )
        app.state.shadow = shadow
        if shadow is not None:
            shadow.start()
            worker.observers.append(shadow)
        if settings.strict_providers:  # a model on a fallback provider fails start-up
            await manager.start()
        starter = asyncio.create_task(_warm_then_consume(manager, worker), name="worker-start")
        try:
            yield
        finally:
            await cancel_task(starter, timeout=30)
            await worker.stop()
            if shadow is not None:
                shadow.stop()
            await manager.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="lineinspect worker", version=__version__, lifespan=lifespan)
    install_error_handlers(app)  # the standard error body (the shadow route's 404)
    app.include_router(shadow_api.router)  # this worker's shadow summary
    auth_http.install(app, settings.tokens)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """200 while the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """200 once models are warm and the worker consumes from a reachable Redis."""
        state = request.app.state
        ready = bool(state.manager.ready and state.worker.ready)
        body = {"ready": ready, "models": state.manager.provider_report()}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        """Text exposition of this worker's metrics."""
        return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def bind_metrics_socket(settings: Settings) -> socket.socket:
    """Bind ``host:worker_metrics_port`` before anything starts, so a port in use (a
    second worker on the host) fails at once, naming the port and the option."""
    host, port = settings.host, settings.worker_metrics_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts after TIME_WAIT
    try:
        sock.bind((host, port))
        sock.listen(128)  # listening now: a second worker's bind fails, even mid-start-up
    except OSError as exc:
        sock.close()
        raise LineInspectError(
            f"cannot bind the worker metrics port {host}:{port} ({exc.strerror}); another "
            "worker on this host? Give each worker its own port with --metrics-port "
            "(LINEINSPECT_WORKER_METRICS_PORT), or 0 for a free one"
        ) from None
    sock.set_inheritable(True)
    return sock


def run_worker(settings: Settings, consumer: str | None = None) -> None:
    """Consume until SIGINT/SIGTERM, then drain."""
    sock = bind_metrics_socket(settings)
    host, port = sock.getsockname()[:2]
    log.info("worker metrics, health and readiness on http://%s:%d", host, port)
    config = uvicorn.Config(
        create_worker_app(settings, consumer),
        log_level=settings.log_level.lower(),
        http=limited_protocol(HttpLimits.of(settings)),  # the API's limits, the same settings
        access_log=False,
        timeout_graceful_shutdown=15,
    )
    uvicorn.Server(config).run(sockets=[sock])
