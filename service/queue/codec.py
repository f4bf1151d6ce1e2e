"""What travels through Redis: frame entries and replies (records or errors)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from models.processing import RawLayout
from service import errors
from service.frames import Frame
from service.queue.streams import text
from service.records import DetectionRecord

_OPTIONAL = ("frame_id", "line", "camera", "model", "image", "pixels")


@dataclass
class QueuedFrame:
    """A frame read back from the stream, with where its answer must go."""

    frame: Frame
    rid: str
    reply_to: str
    enqueued: float  # wall-clock epoch seconds when the API appended it
    once: str  # the frame's identity: a retry of the same frame is inspected once


def frame_identity(frame: Frame) -> str:
    """Digest of frame id, model reference, pixel layout, client digest and bytes: the
    same frame sent again (a client retry) has the same identity; another image under a
    reused frame id does not."""
    h = hashlib.blake2b(digest_size=16)
    layout = frame.pixels.encode() if frame.pixels else ""
    for part in (frame.frame_id, frame.model_ref or "", layout):
        h.update(part.encode() + b"\0")
    if frame.image_sha256:  # a retry with a corrected digest is not the refused frame
        h.update(b"sha256:" + frame.image_sha256 + b"\0")
    h.update(frame.data)
    return h.hexdigest()


def encode_entry(frame: Frame, rid: str, reply_to: str) -> list[bytes | str]:
    """Flat field/value list of a stream entry (ARGV of the enqueue script)."""
    values: dict[str, bytes | str] = {
        "rid": rid,
        "once": frame_identity(frame),
        "reply": reply_to,
        "deadline": repr(frame.deadline),
        "enq": repr(time.time()),
        "data": frame.data,
        "frame_id": frame.frame_id,
        "line": frame.line or "",
        "camera": frame.camera or "",
        "model": frame.model_ref or "",
        "image": frame.image_name or "",
        "pixels": frame.pixels.encode() if frame.pixels else "",  # raw camera pixels
        "sha256": frame.image_sha256 or b"",  # the client's digest: the worker checks it
    }
    flat: list[bytes | str] = []
    for k, v in values.items():
        flat += [k, v]
    return flat


def decode_entry(fields: dict[Any, Any]) -> QueuedFrame:
    """Rebuild the frame of a stream entry; raises ``KeyError``/``ValueError`` if malformed."""
    f = {text(k): v for k, v in fields.items()}
    opt = {k: (text(f[k]) if f.get(k) else None) for k in _OPTIONAL}
    pixels = RawLayout.decode(opt["pixels"]) if opt["pixels"] else None
    frame = Frame(
        data=bytes(f["data"]),
        deadline=float(text(f["deadline"])),
        line=opt["line"],
        camera=opt["camera"],
        model_ref=opt["model"],
        image_name=opt["image"],
        frame_id=opt["frame_id"] or "",
        pixels=pixels,
        image_sha256=bytes(f["sha256"]) if f.get("sha256") else None,
    )
    rid = text(f["rid"])
    once = text(f["once"]) if f.get("once") else rid
    return QueuedFrame(frame, rid, text(f["reply"]), float(text(f["enq"])), once)


def ok_reply(record: DetectionRecord) -> str:
    """The reply payload of an inspected frame."""
    return json.dumps({"ok": True, "record": record.model_dump(mode="json")})


def error_reply(exc: errors.LineInspectError) -> str:
    """The reply payload of a frame that failed with a client-visible error."""
    return json.dumps({"ok": False, "code": exc.code, "message": exc.message})


def _error_classes() -> dict[str, type[errors.LineInspectError]]:
    found: dict[str, type[errors.LineInspectError]] = {}
    todo: list[type[errors.LineInspectError]] = [errors.LineInspectError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo += cls.__subclasses__()
    return found


def decode_reply(payload: bytes | str) -> DetectionRecord:
    """The record of a reply, or raise the error the worker answered with."""
    body = json.loads(payload)
    if body.get("ok"):
        return DetectionRecord.model_validate(body["record"])
    cls = _error_classes().get(str(body.get("code")), errors.LineInspectError)
    raise cls(str(body.get("message", "worker error")))
