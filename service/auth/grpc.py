"""The gRPC edge of access control: a server interceptor for every service.

The ``authorization`` metadata (``Bearer <token>``) is checked against the scope of the
method in :data:`service.auth.policy.GRPC_SCOPES`, for the inspection and KServe
services alike; health is open. A refusal answers UNAUTHENTICATED (no or invalid
token) or PERMISSION_DENIED (valid token without the scope), with the request id and
the error code in the trailing metadata as every other lineinspect error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from service.auth.policy import rpc_scope
from service.auth.tokens import TokenVerifier
from service.errors import LineInspectError
from service.grpc.errors import ERROR_CODE_KEY, REQUEST_ID_KEY, request_id, status_code
from service.metrics import Metrics


class AuthInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls whose token does not grant the method's scope."""

    def __init__(self, verifier: TokenVerifier, metrics: Metrics) -> None:
        self.verifier, self.metrics = verifier, metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Pass the call on, or replace its handler by one that refuses it."""
        handler = await continuation(handler_call_details)
        if handler is None or not self.verifier.enabled:
            return handler
        method: str = handler_call_details.method
        metadata = handler_call_details.invocation_metadata or ()
        value = next((str(v) for k, v in metadata if k == "authorization"), None)
        try:
            self.verifier.authorize(value, rpc_scope(method))
        except LineInspectError as exc:
            return self._refusal(handler, method, exc)
        return handler

    def _refusal(
        self, handler: grpc.RpcMethodHandler, method: str, exc: LineInspectError
    ) -> grpc.RpcMethodHandler:
        code = status_code(exc)

        async def refuse(context: aio.ServicerContext[Any, Any]) -> None:
            self.metrics.errors.labels("grpc", method, code.name).inc()
            trailer = ((REQUEST_ID_KEY, request_id(context)), (ERROR_CODE_KEY, exc.code))
            await context.abort(code, exc.message, trailing_metadata=trailer)

        async def unary(_request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            await refuse(context)

        async def streaming(
            _request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await refuse(context)
            yield None  # never reached: abort raises

        kinds = {
            "unary_unary": grpc.unary_unary_rpc_method_handler,
            "unary_stream": grpc.unary_stream_rpc_method_handler,
            "stream_unary": grpc.stream_unary_rpc_method_handler,
            "stream_stream": grpc.stream_stream_rpc_method_handler,
        }
        for kind, make in kinds.items():
            if getattr(handler, kind) is not None:
                behaviour = streaming if kind.endswith("_stream") else unary
                made: grpc.RpcMethodHandler = make(
                    behaviour,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
                return made
        return handler
