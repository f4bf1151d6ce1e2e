"""The gRPC mapping of the error hierarchy (the only place gRPC status codes are chosen).

:class:`EdgeInterceptor` wraps every handler of lineinspect's own services: a
:class:`LineInspectError` becomes its ``grpc_code``; anything else becomes INTERNAL
and is logged with the request id (from the ``x-request-id`` metadata, else a new
one), which every answer carries back in its trailing metadata. It also keeps the
``protocol="grpc"`` request metrics, and parses the request messages itself, so bytes
that are not a valid message answer INVALID_ARGUMENT (grpc's own parsing answers them
with a bare UNKNOWN or INTERNAL).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import grpc
from grpc import aio

from service.errors import InvalidInput, LineInspectError, client_message
from service.metrics import Metrics
from service.observers import EDGE

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
ERROR_CODE_KEY = "lineinspect-error"


def _parser(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """``deserializer`` raising :class:`InvalidInput` for bytes that are not a message."""

    def parse(raw: bytes) -> Any:
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except Exception:  # DecodeError and kin: the client's bytes, never our bug
            raise InvalidInput("the request is not a valid protobuf message") from None

    return parse


def status_code(exc: LineInspectError) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` named by ``exc.grpc_code`` (INTERNAL if it names none)."""
    code = getattr(grpc.StatusCode, exc.grpc_code, None)
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.INTERNAL


def request_id(context: aio.ServicerContext[Any, Any]) -> str:
    """The client's ``x-request-id`` metadata (at most 64 characters) or a new id."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and value:
            return str(value)[:64]
    return uuid.uuid4().hex[:16]


class EdgeInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Error mapping and request metrics for the methods under ``prefixes``."""

    def __init__(self, metrics: Metrics, prefixes: tuple[str, ...]) -> None:
        self.metrics, self.prefixes = metrics, prefixes

    @staticmethod
    def _edge(method: str) -> str:
        return "grpc-kserve" if method.startswith("/inference.") else "grpc"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap unary-unary and stream-stream handlers of our services."""
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(self.prefixes):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, _parser(handler.request_deserializer)),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream, method, _parser(handler.request_deserializer)),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, behavior: Any, method: str, parse: Callable[[bytes], Any]) -> Any:
        edge = self._edge(method)

        async def unary(raw: bytes, context: aio.ServicerContext[Any, Any]) -> Any:
            EDGE.set(edge)  # each RPC runs in a task of its own: no reset needed
            rid = request_id(context)
            context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
            in_flight = self.metrics.in_flight.labels("grpc")
            in_flight.inc()
            t0 = time.perf_counter()
            try:
                return await behavior(parse(raw), context)
            except aio.AbortError:
                raise  # the handler aborted on purpose: status already set
            except Exception as exc:
                failure = self._failure(exc, method, rid)
            finally:
                in_flight.dec()
                self.metrics.request_duration.labels("grpc", method).observe(
                    time.perf_counter() - t0
                )
            del raw
            await _abort(context, failure)

        return unary

    def _stream(self, behavior: Any, method: str, parse: Callable[[bytes], Any]) -> Any:
        edge = self._edge(method)

        async def stream(
            raw_iterator: AsyncIterator[bytes], context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            EDGE.set(edge)
            rid = request_id(context)
            context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
            in_flight = self.metrics.in_flight.labels("grpc")
            in_flight.inc()
            bad: list[str] = []

            async def requests() -> AsyncIterator[Any]:
                async for raw in raw_iterator:
                    try:
                        yield parse(raw)
                    except InvalidInput as exc:  # end the stream's input; answered below
                        bad.append(exc.message)
                        return

            try:
                async for response in behavior(requests(), context):
                    yield response
                if bad:  # frames before the bad message were answered; now say why it ends
                    raise InvalidInput(bad[0])
            except aio.AbortError:
                raise
            except Exception as exc:
                failure = self._failure(exc, method, rid)
            else:
                return
            finally:
                in_flight.dec()
            await _abort(context, failure)

        return stream

    def _failure(self, exc: Exception, method: str, rid: str) -> _Failure:
        """The status of ``exc`` (counted, and logged when it is a bug).

        Only the status leaves: the exception, whose traceback holds the frames of the
        failed request (and so its buffer, 40 MiB for a large frame), is freed by
        reference counting as soon as the ``except`` block ends. Aborting inside that
        block would chain it to grpc's AbortError, which grpc keeps in a reference cycle
        until the garbage collector runs."""
        if isinstance(exc, LineInspectError):
            code, message, name = status_code(exc), client_message(exc.message), exc.code
        else:
            log.error("unhandled error in %s (request_id=%s)", method, rid, exc_info=exc)
            code = grpc.StatusCode.INTERNAL
            message, name = f"internal error; see the server log for request id {rid}", "internal"
        self.metrics.errors.labels("grpc", method, code.name).inc()
        return _Failure(code, message, ((REQUEST_ID_KEY, rid), (ERROR_CODE_KEY, name)))


class _Failure(NamedTuple):
    code: grpc.StatusCode
    message: str
    trailing: tuple[tuple[str, str], ...]


async def _abort(context: aio.ServicerContext[Any, Any], failure: _Failure) -> None:
    """End the call with ``failure`` (raises grpc's AbortError, outside any except block)."""
    await context.abort(failure.code, failure.message, trailing_metadata=failure.trailing)
