"""A frame's identity: the same frame retried is one frame; another image is not."""

from __future__ import annotations

from service.frames import Frame
from service.queue.codec import decode_entry, encode_entry, frame_identity


def frame(data: bytes = b"jpeg-bytes", frame_id: str = "f-1", model: str | None = None) -> Frame:
    return Frame(data=data, deadline=0.0, frame_id=frame_id, model_ref=model)


def test_a_retry_of_the_same_frame_has_the_same_identity() -> None:
    assert frame_identity(frame()) == frame_identity(frame())


def test_another_image_id_or_model_is_another_frame() -> None:
    base = frame_identity(frame())
    assert frame_identity(frame(data=b"other-bytes")) != base  # a reused frame id
    assert frame_identity(frame(frame_id="f-2")) != base
    assert frame_identity(frame(model="tiny:2")) != base


def test_the_identity_travels_with_the_entry() -> None:
    flat = encode_entry(frame(), "rid-1", "replies")
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    queued = decode_entry(fields)
    assert queued.once == frame_identity(frame()) and queued.rid == "rid-1"
    del fields["once"]  # an entry without an identity: one answer per request
    assert decode_entry(fields).once == "rid-1"
