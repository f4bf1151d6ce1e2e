"""Per-app state created in the lifespan and handed to routes as a dependency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import Request

from service.config import Settings
from service.frames import FrameBackend
from service.manager import ModelManager
from service.metrics import Metrics
from service.registry import Registry


@dataclass
class AppContext:
    """Everything a request may need; no module-level globals anywhere."""

    settings: Settings
    registry: Registry
    metrics: Metrics
    manager: ModelManager | None  # None in API-only mode (queue=redis, no local models)
    backend: FrameBackend
    executor: ThreadPoolExecutor

    @property
    def ready(self) -> bool:
        """Readiness: models warm (and the queue reachable, for remote backends)."""
        return self.backend.ready


def get_ctx(request: Request) -> AppContext:
    """FastAPI dependency returning the app's :class:`AppContext`."""
    ctx: AppContext = request.app.state.ctx
    return ctx
