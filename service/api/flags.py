"""``POST /v1/frames/{frame_id}/flag``: an operator or PLC flags a recent frame after the
fact; it is captured by the ``flagged`` samplers (from a small ring buffer of the last
frames, ``capture_flag_buffer``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.api.errors import error_responses
from service.errors import InvalidInput, NotFound

router = APIRouter(tags=["data"])


@router.post(
    "/v1/frames/{frame_id}/flag",
    status_code=202,
    summary="Flag a recent frame",
    responses=error_responses(400, 404),
)
async def flag_frame(frame_id: str, request: Request) -> dict[str, Any]:
    """Queue the frame for capture by every ``flagged`` sampler that covers it."""
    capture = getattr(request.app.state, "capture", None)
    if capture is None or not capture.flagged:
        raise InvalidInput("no 'flagged' capture sampler is configured")
    try:
        queued = capture.flag(frame_id)
    except KeyError:
        raise NotFound(
            f"frame {frame_id!r} is not among the last {capture.ring_size} frames"
        ) from None
    return {"frame_id": frame_id, "samplers": queued}
