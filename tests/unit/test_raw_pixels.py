"""Raw camera pixels (Mono8 / RGB8 / BGR8): layout checks, the tensor they give, the queue codec."""

from __future__ import annotations

import time

import numpy as np
import pytest

from models.processing import (
    ImageDecodeError,
    ImageTooLargeError,
    RawLayout,
    batch_inputs,
    pixel_format,
    raw_pixels,
)
from service.errors import InvalidImage, InvalidInput, PayloadTooLarge
from service.frames import Frame
from service.grpc.convert import check_request
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.inspector import prepare
from service.queue.codec import decode_entry, encode_entry
from tests.conftest import defect_image, encode


def _grey(width: int = 200, height: int = 160) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width), dtype=np.uint8)


def test_pixel_format_names_are_genicam_and_case_blind() -> None:
    assert pixel_format("Mono8") == "mono8" and pixel_format(" RGB8 ") == "rgb8"
    assert pixel_format("bgr8") == "bgr8"
    assert pixel_format("jpeg") is None and pixel_format("") is None


def test_layout_round_trips_as_text_and_refuses_garbage() -> None:
    layout = RawLayout(640, 480, "mono8")
    assert layout.nbytes == 640 * 480 and RawLayout.decode(layout.encode()) == layout
    assert RawLayout(4, 2, "rgb8").nbytes == 24
    with pytest.raises(ValueError):
        RawLayout.decode("yuv422:4x2")
    with pytest.raises(ValueError):
        RawLayout.decode("mono8:4by2")


def test_mismatched_zero_and_oversized_buffers_are_refused() -> None:
    with pytest.raises(ImageDecodeError, match="needs 32000 bytes, got 31999"):
        raw_pixels(b"\0" * 31999, RawLayout(200, 160, "mono8"))
    with pytest.raises(ImageDecodeError, match="width and a height"):
        raw_pixels(b"", RawLayout(0, 160, "mono8"))
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        raw_pixels(b"\0" * 32000, RawLayout(200, 160, "mono8"), max_pixels=10_000)


def test_mono8_gives_the_tensor_of_the_same_greyscale_image_encoded_losslessly() -> None:
    grey = _grey()
    png = encode(np.repeat(grey[..., None], 3, axis=2), "PNG")
    t_png, info_png, size_png = prepare(png, 224, 10**6)
    t_raw, info_raw, size_raw = prepare(grey.tobytes(), 224, 10**6, RawLayout(200, 160, "mono8"))
    assert t_raw.shape == (224, 224) and t_png.shape == (224, 224, 3)  # mono stays 1 channel
    assert (info_raw, size_raw) == (info_png, size_png) == (info_png, (200, 160))
    np.testing.assert_array_equal(batch_inputs([t_raw]), batch_inputs([t_png]))


def test_rgb8_and_bgr8_give_the_rgb_pixels() -> None:
    rgb = defect_image()
    rgb[..., 0] = 7  # make the channels differ
    h, w = rgb.shape[:2]
    np.testing.assert_array_equal(raw_pixels(rgb.tobytes(), RawLayout(w, h, "rgb8")), rgb)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    np.testing.assert_array_equal(raw_pixels(bgr.tobytes(), RawLayout(w, h, "bgr8")), rgb)


def test_prepare_maps_raw_errors_to_the_service_errors() -> None:
    with pytest.raises(InvalidImage):
        prepare(b"\0" * 10, 224, 10**6, RawLayout(200, 160, "mono8"))
    with pytest.raises(PayloadTooLarge):
        prepare(b"\0" * 32000, 224, 1000, RawLayout(200, 160, "mono8"))


def test_grpc_request_checks_raw_frames() -> None:
    ok = pb.InspectRequest(image=b"\0" * 32000, encoding="Mono8", width=200, height=160)
    assert check_request(ok) == RawLayout(200, 160, "mono8")
    assert check_request(pb.InspectRequest(image=b"x", encoding="jpeg")) is None
    with pytest.raises(InvalidImage, match="width and height"):
        check_request(pb.InspectRequest(image=b"\0" * 4, encoding="Mono8", width=4))
    with pytest.raises(InvalidInput, match="only for raw pixels"):
        check_request(pb.InspectRequest(image=b"x", encoding="jpeg", width=200, height=160))


def _through_queue(frame: Frame) -> Frame:
    flat = encode_entry(frame, "rid-1", "reply-1")
    # Field names and values come back from redis as bytes.
    fields = {
        str(k).encode(): (v if isinstance(v, bytes) else v.encode())
        for k, v in zip(flat[::2], flat[1::2], strict=True)
    }
    return decode_entry(fields).frame


def test_raw_frames_cross_the_redis_queue_with_their_layout() -> None:
    layout = RawLayout(200, 160, "mono8")
    frame = Frame(data=_grey().tobytes(), deadline=time.time() + 5, camera="c1", pixels=layout)
    back = _through_queue(frame)
    assert back.pixels == layout and back.data == frame.data and back.camera == "c1"
    assert _through_queue(Frame(data=b"jpeg", deadline=time.time() + 5)).pixels is None
