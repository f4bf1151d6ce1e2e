"""The FastAPI application factory and its lifespan (where all state is created)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.api import data, flags, health, inspect, label_studio, models
from service.api.errors import install_error_handlers
from service.api.middleware import ObservabilityMiddleware
from service.auth import http as auth_http
from service.capture.capture import install as capture_install
from service.config import Settings
from service.context import AppContext
from service.inspector import decode_executor, local_inspector
from service.jobs import api as jobs_api
from service.manager import ModelManager
from service.metrics import Metrics
from service.promotion import api as promotion_api
from service.promotion.loop import install as promotion_install
from service.registry import Registry
from service.store import open_store

log = logging.getLogger(__name__)

DESCRIPTION = """
Inline visual inspection for production lines. POST an image to `/v1/inspect` and get
the defects found and a pass/fail verdict; manage model versions and aliases under
`/v1/models`; scrape `/metrics` with Prometheus.
"""

#: Hook for extra routers (e.g. the KServe v2 HTTP routes) registered by other modules.
RouterHook = Callable[[FastAPI], None]
#: Extra edges (e.g. the gRPC server) that live as long as the app: entered in the
#: lifespan after the context exists, exited before it is torn down.
Edge = Callable[[AppContext], AbstractAsyncContextManager[None]]


def build_context(settings: Settings) -> AppContext:
    """Create registry, metrics, executor, model manager and the frame backend.

    ``queue=redis``: no local models (``manager`` is None); the backend is the Redis
    queue, entered as an async context manager by the lifespan, and readiness follows
    Redis reachability.

    Validates that every configured model reference resolves, so a typo fails start-up
    with a clear message instead of leaving the service unready forever.
    """
    registry = Registry(settings.registry_root)
    metrics = Metrics(settings.lines, settings.cameras, settings.max_label_values)
    executor = decode_executor(settings)
    if settings.queue == "redis":  # API-only: frames go to the workers, no local models
        from service.queue.backend import RedisFrameBackend

        remote = RedisFrameBackend(settings, metrics)
        return AppContext(settings, registry, metrics, None, remote, executor)
    inspector = local_inspector(settings, registry, metrics, executor)
    return AppContext(settings, registry, metrics, inspector.manager, inspector, executor)


def create_app(
    settings: Settings,
    context_factory: Callable[[Settings], AppContext] = build_context,
    extra_routers: tuple[RouterHook, ...] = (),
    edges: tuple[Edge, ...] = (),
) -> FastAPI:
    """Build the app. State is created in the lifespan; models warm in the background
    and ``/readyz`` answers 503 until they are."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context_factory(settings)
        app.state.ctx = ctx
        # --- data store (service/store): migrated here, before any request ---
        app.state.store = open_store(settings)
        app.state.store_settings = settings
        if ctx.manager is not None and settings.strict_providers:
            await _start_strict(ctx.manager, ctx.executor)  # fallback provider: no start
        cold = ctx.manager is not None and not ctx.manager.ready
        warm = asyncio.create_task(ctx.manager.start()) if ctx.manager and cold else None
        if warm is not None:
            warm.add_done_callback(_log_warm_failure)
        try:
            async with AsyncExitStack() as stack:
                if isinstance(ctx.backend, AbstractAsyncContextManager):  # e.g. Redis queue
                    await stack.enter_async_context(ctx.backend)
                # --- capture (service/capture): offered every answered frame ---
                app.state.capture = capture_install(settings, app.state.store, ctx)
                if app.state.capture is not None:
                    stack.callback(app.state.capture.stop)
                # --- promotion (service/promotion): shadow checks, rollback monitor ---
                app.state.promotion = await promotion_install(
                    settings, app.state.store, ctx, app.state
                )
                stack.push_async_callback(app.state.promotion.stop)
                for edge in edges:
                    await stack.enter_async_context(edge(ctx))
                yield
        finally:
            if warm is not None and not warm.done():
                warm.cancel()
            if ctx.manager is not None:
                await ctx.manager.stop()
            ctx.executor.shutdown(wait=False, cancel_futures=True)
            app.state.store.close()

    app = FastAPI(
        title="lineinspect", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    install_error_handlers(app)
    routers = (inspect.router, models.router, health.router, data.router, label_studio.router)
    for r in (*routers, flags.router, jobs_api.router, promotion_api.router):
        app.include_router(r)
    for hook in extra_routers:
        hook(app)
    auth_http.install(app, settings.tokens)  # inside the observability middleware
    app.add_middleware(ObservabilityMiddleware)
    return app


async def _start_strict(manager: ModelManager, executor: ThreadPoolExecutor) -> None:
    """Warm every model before serving; any failure (e.g. ProviderUnavailable) aborts
    start-up, so uvicorn exits instead of serving an unready process."""
    try:
        await manager.start()
    except BaseException:
        await manager.stop()
        executor.shutdown(wait=False, cancel_futures=True)
        raise


def _log_warm_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("model warm-up failed; the service stays unready", exc_info=task.exception())
