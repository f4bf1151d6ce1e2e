"""The gRPC server as an app edge: ``grpc.aio`` in the app's event loop.

:class:`GrpcEdge` is an ``Edge`` of :func:`service.api.app.create_app`: entered in the
lifespan with the :class:`AppContext`, so gRPC shares the backend, the batcher and
the metrics with REST. It serves ``lineinspect.v1.InspectionService``,
``inference.GRPCInferenceService``, the standard health service (status follows
readiness) and server reflection (``grpc_reflection``); checks tokens
(:mod:`service.auth.grpc`); limits message sizes; optionally requires TLS and
client certificates; and on exit stops reading new frames, answers the admitted ones
and waits up to ``grpc_shutdown_grace_s`` for calls to finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from service.auth.grpc import AuthInterceptor
from service.auth.tokens import TokenVerifier
from service.config import Settings
from service.context import AppContext
from service.grpc import inspection, kserve
from service.grpc.errors import EdgeInterceptor
from service.grpc.generated.kserve import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
from service.grpc.generated.lineinspect.v1 import inspection_pb2, inspection_pb2_grpc

log = logging.getLogger(__name__)

SERVICES = (inspection.SERVICE_NAME, kserve.SERVICE_NAME)
READINESS_POLL_S = 0.1


def reflection_pool() -> Any:
    """A descriptor pool with every file the server offers through reflection.

    Our stubs live in private pools (see service/grpc/codegen.py), so reflection gets
    its own pool holding copies of them, of health and of reflection itself.
    """
    pool = descriptor_pool.DescriptorPool()
    for module in (inspection_pb2, grpc_predict_v2_pb2, health_pb2, reflection_pb2):
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb))
    return pool


def server_credentials(settings: Settings) -> Any:
    """TLS credentials from the settings, or None for plaintext."""
    if settings.grpc_tls_cert is None or settings.grpc_tls_key is None:
        return None
    ca = settings.grpc_tls_client_ca
    return grpc.ssl_server_credentials(
        [(settings.grpc_tls_key.read_bytes(), settings.grpc_tls_cert.read_bytes())],
        root_certificates=ca.read_bytes() if ca else None,
        require_client_auth=ca is not None,
    )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class GrpcEdge:
    """gRPC beside REST. ``port`` overrides ``settings.grpc_port`` (0 = ephemeral, for
    tests); the bound port is :attr:`port` once the app has started."""

    def __init__(self, port: int | None = None) -> None:
        self._requested_port = port
        self.port: int | None = None
        self.inspection: inspection.InspectionServicer | None = None
        self.kserve: kserve.KServeServicer | None = None

    def build(self, ctx: AppContext) -> tuple[Any, Any]:
        """Create the (not yet started) ``grpc.aio`` server with every service; returns
        it and its health servicer."""
        s = ctx.settings
        options = [
            ("grpc.max_receive_message_length", s.grpc_max_message_bytes),
            ("grpc.max_send_message_length", s.grpc_max_message_bytes),
            ("grpc.so_reuseport", 0),  # a busy port fails loudly instead of being shared
        ]
        if s.grpc_stream_window_bytes is not None:
            options += [
                ("grpc.http2.lookahead_bytes", s.grpc_stream_window_bytes),
                ("grpc.http2.bdp_probe", 0),
            ]
        prefixes = tuple(f"/{name}/" for name in SERVICES)
        interceptors = [
            AuthInterceptor(TokenVerifier(s.tokens), ctx.metrics),  # outermost: refuse first
            EdgeInterceptor(ctx.metrics, prefixes),
        ]
        server = aio.server(interceptors=interceptors, options=options)
        self.inspection = inspection.InspectionServicer(ctx)
        self.kserve = kserve.KServeServicer(ctx)
        # The generated *_pb2_grpc modules carry no type hints.
        add_inspection: Any = inspection_pb2_grpc.add_InspectionServiceServicer_to_server
        add_kserve: Any = grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server
        add_inspection(self.inspection, server)
        add_kserve(self.kserve, server)
        checker = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        if s.grpc_reflection:
            names = (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME)
            reflection.enable_server_reflection(names, server, pool=reflection_pool())
        return server, checker

    @asynccontextmanager
    async def __call__(self, ctx: AppContext) -> AsyncIterator[None]:
        """Serve gRPC while the app lives; on exit drain streams, then stop."""
        s = ctx.settings
        server, checker = self.build(ctx)
        servicers = (self.inspection, self.kserve)
        port = self._requested_port if self._requested_port is not None else s.grpc_port
        host = s.grpc_host or s.host
        creds = server_credentials(s)
        address = _address(host, port)
        bound = (
            server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
        )
        if not bound:
            raise RuntimeError(f"cannot bind gRPC to {address}")
        await _publish(checker, ctx.ready)  # before the first call can ask
        await server.start()
        self.port = bound
        log.info("gRPC on %s (%s)", _address(host, bound), "TLS" if creds else "plaintext")
        follower = asyncio.create_task(_follow_readiness(ctx, checker), name="grpc-health")
        try:
            yield
        finally:
            follower.cancel()
            await checker.enter_graceful_shutdown()
            for servicer in servicers:
                if servicer is not None:
                    servicer.begin_shutdown()
            await server.stop(s.grpc_shutdown_grace_s)
            log.info("gRPC stopped")


async def _publish(checker: Any, ready: bool) -> None:
    """Health status of the server ("") and of our services: SERVING iff ready."""
    status = health_pb2.HealthCheckResponse
    for name in ("", *SERVICES):
        await checker.set(name, status.SERVING if ready else status.NOT_SERVING)


async def _follow_readiness(ctx: AppContext, checker: Any) -> None:
    """Keep the health status equal to readiness (models warm, queue reachable)."""
    last = ctx.ready
    while True:
        await asyncio.sleep(READINESS_POLL_S)
        if ctx.ready != last:
            last = ctx.ready
            await _publish(checker, last)
