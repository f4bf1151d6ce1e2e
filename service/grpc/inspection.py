"""``lineinspect.v1.InspectionService``: unary ``Inspect`` and streaming ``StreamInspect``.

Every frame goes through ``ctx.backend.inspect`` (the same batcher as REST). Streams
are flow-controlled by :class:`service.grpc.flow.StreamFlow` (bounded, ordered per
camera, newest frame wins); per-frame problems are answered in the frame's response
and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from service.context import AppContext
from service.errors import LineInspectError, client_message
from service.frames import Frame
from service.grpc.convert import frame_from_request, lane_of, record_to_proto
from service.grpc.errors import status_code
from service.grpc.flow import FlowStats, Outcome, StreamFlow, Ticket
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.records import DetectionRecord

log = logging.getLogger(__name__)

SERVICE_NAME = "lineinspect.v1.InspectionService"
_STREAM_METHOD = f"/{SERVICE_NAME}/StreamInspect"
_STATUS = {
    Outcome.DONE: pb.FRAME_STATUS_INSPECTED,
    Outcome.SKIPPED: pb.FRAME_STATUS_SKIPPED,
    Outcome.EXPIRED: pb.FRAME_STATUS_EXPIRED,
    Outcome.FAILED: pb.FRAME_STATUS_FAILED,
}
_Flow = StreamFlow[Frame, DetectionRecord]


def error_proto(exc: BaseException | None) -> pb.Error:
    """The per-frame error of a stream answer (the code Inspect would return)."""
    if isinstance(exc, LineInspectError):
        return pb.Error(
            code=exc.code, message=client_message(exc.message), grpc_code=status_code(exc).name
        )
    return pb.Error(
        code="internal", message="internal error; see the server log", grpc_code="INTERNAL"
    )


def answer(ticket: Ticket[Frame, DetectionRecord]) -> pb.InspectResponse:
    """The stream answer of one ticket (tag = frame id, line, camera)."""
    frame_id, line, camera = ticket.tag
    outcome = ticket.outcome or Outcome.FAILED
    resp = pb.InspectResponse(frame_id=frame_id, line=line, camera=camera, status=_STATUS[outcome])
    if outcome is Outcome.DONE and ticket.result is not None:
        resp.record.CopyFrom(record_to_proto(ticket.result))
    elif outcome is not Outcome.SKIPPED:
        if ticket.error is not None and not isinstance(ticket.error, LineInspectError):
            log.error("frame %s failed", frame_id, exc_info=ticket.error)
        resp.error.CopyFrom(error_proto(ticket.error))
    return resp


class InspectionServicer:
    """Implements ``lineinspect.v1.InspectionService`` on an :class:`AppContext`."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._readers: dict[asyncio.Task[None], _Flow] = {}
        self._shutting_down = False

    @property
    def streams(self) -> list[FlowStats]:
        """Flow statistics of the open streams (tests, debugging)."""
        return [flow.stats for flow in self._readers.values()]

    async def Inspect(
        self, request: pb.InspectRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.InspectResponse:
        """Inspect one frame; errors become status codes in the edge interceptor."""
        frame = frame_from_request(request, self.ctx.settings, context.time_remaining())
        record = await self.ctx.backend.inspect(frame)
        return pb.InspectResponse(
            frame_id=frame.frame_id,
            line=request.line,
            camera=request.camera,
            status=pb.FRAME_STATUS_INSPECTED,
            record=record_to_proto(record),
        )

    async def StreamInspect(
        self,
        request_iterator: AsyncIterator[pb.InspectRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.InspectResponse]:
        """Answer every frame of the stream exactly once, in order per camera."""
        if self._shutting_down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        s, dropped = self.ctx.settings, self.ctx.metrics.dropped
        flow: _Flow = StreamFlow(
            self.ctx.backend.inspect,
            lane=lambda f: lane_of(f.line or "", f.camera or ""),
            expired=lambda f: f.remaining() <= 0,
            in_flight=s.grpc_stream_in_flight,
            buffer=s.grpc_stream_buffer,
            on_drop=lambda reason: dropped.labels(reason).inc(),
        )
        reader = asyncio.create_task(self._read(request_iterator, flow))
        self._readers[reader] = flow
        errors = self.ctx.metrics.errors
        try:
            async for ticket in flow.answers():
                resp = answer(ticket)
                if resp.status == pb.FRAME_STATUS_FAILED:
                    errors.labels("grpc", _STREAM_METHOD, resp.error.grpc_code).inc()
                yield resp
        finally:
            self._readers.pop(reader, None)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await flow.cancel()
        if self._shutting_down:
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details("server shut down; frames without an answer were not read")

    async def _read(self, requests: AsyncIterator[pb.InspectRequest], flow: _Flow) -> None:
        """Admit each request (waiting for room in the flow), then close the flow."""
        try:
            async for req in requests:
                tag = (req.frame_id, req.line, req.camera)
                try:
                    frame = frame_from_request(req, self.ctx.settings)
                except LineInspectError as exc:
                    await flow.reject(lane_of(req.line, req.camera), exc, tag)
                    continue
                await flow.admit(frame, (frame.frame_id, req.line, req.camera))
        finally:
            flow.close()

    def begin_shutdown(self) -> None:
        """Stop reading new frames on every stream; admitted ones are still answered."""
        self._shutting_down = True
        for reader in list(self._readers):
            reader.cancel()
