"""``inference.GRPCInferenceService`` (KServe v2 / Open Inference Protocol) on the
protocol-neutral :class:`service.kserve.core.KServeCore`.

Inputs arrive as ``raw_input_contents`` (what tritonclient sends) or typed
``contents``; outputs always leave as ``raw_output_contents``, as Triton does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format
from grpc import aio

from service import __version__
from service.context import AppContext
from service.errors import InvalidInput, LineInspectError
from service.grpc.flow import Outcome, StreamFlow
from service.grpc.generated.kserve import grpc_predict_v2_pb2 as pb
from service.kserve.core import EXTENSIONS, PLATFORM, SERVER_NAME, InferResult, KServeCore
from service.kserve.tensors import Tensor, checked_array, element_count, from_raw, to_raw

log = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"
_TYPED = {
    "BYTES": "bytes_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "BOOL": "bool_contents",
}


def _typed_input(t: Any) -> Tensor:
    field = _TYPED.get(t.datatype)
    if field is None:
        raise InvalidInput(f"input {t.name!r}: send {t.datatype} as raw_input_contents")
    values = getattr(t.contents, field)
    shape = list(t.shape)
    count = element_count(shape)
    if len(values) != count:
        raise InvalidInput(f"input {t.name!r}: {len(values)} values for shape {shape}")
    if t.datatype == "BYTES":
        return Tensor(t.name, t.datatype, shape, list(values))
    arr = checked_array(t.name, t.datatype, list(values))
    return Tensor(t.name, t.datatype, shape, arr.reshape(shape))


def parameters_of(params: Any) -> dict[str, Any]:
    """A v2 ``map<string, InferParameter>`` as plain values (unset entries left out)."""
    out: dict[str, Any] = {}
    for key, p in params.items():
        kind = p.WhichOneof("parameter_choice")
        if kind is not None:
            out[key] = getattr(p, kind)
    return out


def inputs_of(request: Any) -> list[Tensor]:
    """The request's input tensors, from raw contents (one per input) or typed contents."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    if raw:
        tensors = [
            from_raw(t.name, t.datatype, list(t.shape), r)
            for t, r in zip(request.inputs, raw, strict=True)
        ]
    else:
        tensors = [_typed_input(t) for t in request.inputs]
    for tensor, spec in zip(tensors, request.inputs, strict=True):
        tensor.parameters = parameters_of(spec.parameters)
    return tensors


def timeout_of(request: Any) -> float | None:
    """Triton's ``timeout`` request parameter (microseconds) in seconds."""
    if "timeout" not in request.parameters:
        return None
    p = request.parameters["timeout"]
    kind = p.WhichOneof("parameter_choice")
    if kind not in ("int64_param", "uint64_param") or getattr(p, kind) <= 0:
        raise InvalidInput("parameter 'timeout' must be a positive integer (microseconds)")
    return float(getattr(p, kind)) / 1e6


def response_of(result: InferResult) -> Any:
    """The ModelInferResponse of a result, contents as raw_output_contents."""
    resp = pb.ModelInferResponse(
        model_name=result.model_name, model_version=result.model_version, id=result.id
    )
    for t in result.outputs:
        resp.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        resp.raw_output_contents.append(to_raw(t))
    return resp


class KServeServicer:
    """Implements ``inference.GRPCInferenceService`` on an :class:`AppContext`."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.core = KServeCore(ctx)
        self._readers: set[asyncio.Task[None]] = set()
        self._shutting_down = False

    async def ServerLive(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        """Always live while the process serves gRPC."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        """Ready once every configured model is warm."""
        return pb.ServerReadyResponse(ready=self.ctx.ready)

    async def ModelReady(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        """Whether this model version is loaded and warm."""
        return pb.ModelReadyResponse(ready=self.core.ready(request.name, request.version))

    async def ServerMetadata(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        """Server name, version and extensions."""
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=__version__, extensions=EXTENSIONS
        )

    async def ModelMetadata(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        """Versions, platform and tensors of a model."""
        meta = self.core.metadata(request.name, request.version)
        resp = pb.ModelMetadataResponse(
            name=meta.name, versions=meta.versions, platform=meta.platform
        )
        for dst, specs in ((resp.inputs, meta.inputs), (resp.outputs, meta.outputs)):
            for s in specs:
                dst.add(name=s.name, datatype=s.datatype, shape=s.shape)
        return resp

    async def ModelConfig(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        """The minimal model configuration (see proto/kserve/grpc_predict_v2.proto)."""
        cfg = self.core.config(request.name, request.version)
        config = pb.ModelConfig(
            name=cfg["name"], platform=PLATFORM, backend=cfg["backend"], max_batch_size=0
        )
        for i in cfg["input"]:
            config.input.add(
                name=i["name"],
                data_type=pb.DataType.Value(i["data_type"]),
                dims=i["dims"],
                optional=True,
            )
        for o in cfg["output"]:
            config.output.add(
                name=o["name"], data_type=pb.DataType.Value(o["data_type"]), dims=o["dims"]
            )
        return pb.ModelConfigResponse(config=config)

    async def ModelStatistics(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        """Cumulative statistics per model version (service/model_stats.py)."""
        stats = self.core.statistics(request.name, request.version)
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

    async def ModelInfer(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        """Inspect the request's images; errors become status codes in the interceptor."""
        return await self._infer(request, context.time_remaining())

    async def _infer(self, request: Any, call_remaining: float | None = None) -> Any:
        timeout = timeout_of(request)
        if call_remaining is not None:
            timeout = call_remaining if timeout is None else min(timeout, call_remaining)
        requested = [o.name for o in request.outputs] or None
        result = await self.core.infer(
            request.model_name,
            request.model_version,
            inputs_of(request),
            requested,
            request.id,
            timeout,
        )
        return response_of(result)

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        """Answer each request in order with a bounded number running and buffered; a
        failed request is answered with ``error_message`` and the stream goes on."""
        s = self.ctx.settings
        flow: StreamFlow[Any, Any] = StreamFlow(
            self._infer,
            lane=lambda r: "",
            expired=lambda r: False,
            newest_wins=False,
            in_flight=s.grpc_stream_in_flight,
            buffer=s.grpc_stream_buffer,
        )

        async def read() -> None:
            try:
                async for req in request_iterator:
                    await flow.admit(req, (req.id,))
            finally:
                flow.close()

        reader = asyncio.create_task(read())
        self._readers.add(reader)
        try:
            async for t in flow.answers():
                if t.outcome is Outcome.DONE:
                    yield pb.ModelStreamInferResponse(infer_response=t.result)
                else:
                    err = t.error
                    if not isinstance(err, LineInspectError):
                        log.error("stream request %s failed", t.tag[0], exc_info=err)
                    msg = err.message if isinstance(err, LineInspectError) else "internal error"
                    yield pb.ModelStreamInferResponse(
                        error_message=msg, infer_response=pb.ModelInferResponse(id=t.tag[0])
                    )
        finally:
            self._readers.discard(reader)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await flow.cancel()
        if self._shutting_down:
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details("server shut down; requests without an answer were not read")

    def begin_shutdown(self) -> None:
        """Stop reading new requests on every stream; admitted ones are still answered."""
        self._shutting_down = True
        for reader in list(self._readers):
            reader.cancel()
