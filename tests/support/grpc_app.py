"""Serve the REST app with the KServe v2 routes and the gRPC edge on ephemeral ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.api import kserve
from service.api.app import create_app
from service.config import Settings, load_settings
from service.grpc.server import GrpcEdge
from tests.support.servers import serve_app


@dataclass
class Served:
    """A running server: REST base URL, gRPC target and the edge (for its internals)."""

    url: str
    target: str
    edge: GrpcEdge


def settings_for(registry_root: Path, **kw: Any) -> Settings:
    """Test settings: the tiny model, fast registry polling, one warm-up run."""
    base = {
        "registry_root": registry_root,
        "models": ["tiny"],
        "registry_poll_s": 0.05,
        "warmup_runs": 1,
    }
    return load_settings(None, **{**base, **kw})


@contextmanager
def serve_grpc(settings: Settings, ready_path: str | None = "/readyz") -> Iterator[Served]:
    """REST + KServe HTTP + gRPC (port 0) in one app; waits for readiness."""
    edge = GrpcEdge(port=0)
    app = create_app(settings, extra_routers=(kserve.install,), edges=(edge,))
    with serve_app(app, ready_path=ready_path) as url:
        assert edge.port
        yield Served(url, f"127.0.0.1:{edge.port}", edge)
