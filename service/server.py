"""Run the service: uvicorn for REST (+ gRPC edge when enabled)."""

from __future__ import annotations

import uvicorn

from service.api import kserve
from service.api.app import Edge, create_app
from service.config import Settings
from service.grpc.server import GrpcEdge
from service.http_limits import HttpLimits, limited_protocol
from service.jobs.embedded import embedded_trainer


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn drains in-flight requests on shutdown."""
    edges: tuple[Edge, ...] = (GrpcEdge(),) if settings.grpc_port else ()
    app = create_app(
        settings,
        extra_routers=(kserve.install,),
        edges=(*edges, embedded_trainer),
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        loop="auto",
        http=limited_protocol(HttpLimits.of(settings)),
        access_log=False,
        timeout_graceful_shutdown=15,
    )
