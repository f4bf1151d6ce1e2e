"""The per-app state every edge (REST, gRPC, KServe) serves from, created once at start-up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
