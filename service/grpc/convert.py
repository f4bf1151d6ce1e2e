"""Conversions between ``lineinspect.v1`` messages and the service's own types."""

from __future__ import annotations

import math
import time
from typing import Literal

from models.processing import RawLayout, pixel_format
from service.config import Settings
from service.errors import InvalidImage, InvalidInput, UnsupportedMediaType
from service.frames import Frame
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.integrity import from_bytes
from service.records import Detection, DetectionRecord, ModelInfo, Timing

ENCODINGS = {
    "jpeg": "jpeg",
    "jpg": "jpeg",
    "png": "png",
    "bmp": "bmp",
    "x-ms-bmp": "bmp",
    "tiff": "tiff",
    "tif": "tiff",
}
_LIMITS = {"line": 64, "camera": 64, "frame_id": 128, "model": 128, "image_name": 256}
MAX_DEADLINE_MS = 600_000.0
_VERDICTS = {"pass": pb.VERDICT_PASS, "fail": pb.VERDICT_FAIL}


def lane_of(line: str, camera: str) -> str:
    """The ordering lane of a frame: frames of one (line, camera) are answered in order."""
    return f"{line}\x00{camera}"


def check_request(req: pb.InspectRequest) -> RawLayout | None:
    """Validate the request fields a frame is built from; raises :class:`InvalidInput`.

    Returns the layout of a raw-pixel frame (its buffer size and pixel limit are
    checked when it is prepared, like an encoded image's), None for an encoded image."""
    for name, limit in _LIMITS.items():
        if len(getattr(req, name)) > limit:
            raise InvalidInput(f"{name} is longer than {limit} characters")
    raw = pixel_format(req.encoding)
    enc = req.encoding.strip().lower().removeprefix("image/")
    if raw is None and enc and enc not in ENCODINGS:
        raise UnsupportedMediaType(
            f"encoding {req.encoding!r} is not accepted; use jpeg, png, bmp, tiff, "
            "or raw pixels as Mono8, RGB8 or BGR8"
        )
    if not req.image:
        raise InvalidImage("empty image")
    if not (math.isfinite(req.deadline_ms) and 0 <= req.deadline_ms <= MAX_DEADLINE_MS):
        raise InvalidInput(f"deadline_ms must be within [0, {MAX_DEADLINE_MS:.0f}]")
    if raw is None:
        if req.width or req.height:
            raise InvalidInput("width and height are only for raw pixels (Mono8, RGB8, BGR8)")
        return None
    if not (req.width and req.height):
        raise InvalidImage(f"a {req.encoding} frame needs its width and height")
    return RawLayout(req.width, req.height, raw)  # buffer size: checked when prepared


def frame_from_request(
    req: pb.InspectRequest, settings: Settings, time_remaining: float | None = None
) -> Frame:
    """Build the :class:`Frame` of a request (validated). ``time_remaining`` is the
    gRPC call's own deadline in seconds, if the client set one: the tighter one wins."""
    layout = check_request(req)
    budget = (req.deadline_ms or settings.default_deadline_ms) / 1000
    if time_remaining is not None:
        budget = min(budget, time_remaining)
    frame = Frame(
        data=req.image,
        deadline=time.time() + budget,
        line=req.line or None,
        camera=req.camera or None,
        model_ref=req.model or None,
        image_name=req.image_name or None,
        frame_id=req.frame_id,
        pixels=layout,
        image_sha256=from_bytes(req.image_sha256),
    )
    return frame


def record_to_proto(record: DetectionRecord) -> pb.DetectionRecord:
    """The typed message of a detection record."""
    m, t = record.model, record.timing_ms
    msg = pb.DetectionRecord(
        frame_id=record.frame_id,
        model=pb.ModelInfo(name=m.name, version=m.version, role=m.role),
        verdict=_VERDICTS[record.verdict],
        timing_ms=pb.Timing(queue=t.queue, inference=t.inference, total=t.total),
    )
    for name in ("image", "line", "camera"):
        value = getattr(record, name)
        if value is not None:
            setattr(msg, name, value)
    for d in record.detections:
        x1, y1, x2, y2 = d.box
        msg.detections.add(box=pb.Box(x1=x1, y1=y1, x2=x2, y2=y2), score=d.score, label=d.label)
    return msg


def record_from_proto(msg: pb.DetectionRecord) -> DetectionRecord:
    """The detection record of a typed message (clients, tests, benchmarks)."""
    verdict: Literal["pass", "fail"] = "fail" if msg.verdict == pb.VERDICT_FAIL else "pass"
    return DetectionRecord(
        image=msg.image if msg.HasField("image") else None,
        frame_id=msg.frame_id,
        line=msg.line if msg.HasField("line") else None,
        camera=msg.camera if msg.HasField("camera") else None,
        model=ModelInfo(name=msg.model.name, version=msg.model.version, role=msg.model.role),
        verdict=verdict,
        detections=[
            Detection(box=[d.box.x1, d.box.y1, d.box.x2, d.box.y2], score=d.score, label=d.label)
            for d in msg.detections
        ],
        timing_ms=Timing(
            queue=msg.timing_ms.queue, inference=msg.timing_ms.inference, total=msg.timing_ms.total
        ),
    )
