"""Raw (unencoded) camera pixels: the frames machine-vision cameras deliver.

GigE Vision and USB3 Vision cameras hand their node a raw buffer in a GenICam pixel
format (``Mono8`` for the greyscale cameras that inspect steel, ``RGB8``/``BGR8`` for
colour). Sending that buffer as is spares the camera node a JPEG encode and the server
a decode: on a 2-core server with the S-model, JPEG decode is ~7 % of the CPU per frame
(docs/benchmarks.md). Rows are packed (no line padding), row-major, top row first.

A ``Mono8`` frame stays one channel through the letterbox (a third of the resize work);
:func:`models.processing.letterbox.to_tensor` broadcasts it to the three identical
channels the models were trained on, the same tensor a greyscale JPEG decodes to.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.processing.errors import ImageDecodeError, ImageTooLargeError

# GenICam PFNC names (lower-cased) → channels per pixel.
PIXEL_FORMATS: dict[str, int] = {"mono8": 1, "rgb8": 3, "bgr8": 3}


def pixel_format(name: str) -> str | None:
    """The canonical raw pixel format for ``name`` (``"Mono8"`` → ``"mono8"``), or None
    when ``name`` is not a raw format (an encoded image such as ``"jpeg"``)."""
    key = name.strip().lower()
    return key if key in PIXEL_FORMATS else None


@dataclass(frozen=True)
class RawLayout:
    """How to read a raw pixel buffer: its size and GenICam pixel format."""

    width: int
    height: int
    pixel_format: str  # a key of PIXEL_FORMATS

    @property
    def nbytes(self) -> int:
        """Bytes a packed buffer of this layout holds."""
        return self.width * self.height * PIXEL_FORMATS[self.pixel_format]

    def encode(self) -> str:
        """``"mono8:200x200"``: the layout as one string (queue entries)."""
        return f"{self.pixel_format}:{self.width}x{self.height}"

    @classmethod
    def decode(cls, text: str) -> RawLayout:
        """Inverse of :meth:`encode`; raises ``ValueError`` on a malformed string."""
        fmt, _, size = text.partition(":")
        w, _, h = size.partition("x")
        if fmt not in PIXEL_FORMATS:
            raise ValueError(f"unknown pixel format {fmt!r}")
        return cls(int(w), int(h), fmt)


def check_layout(layout: RawLayout, nbytes: int, max_pixels: int) -> None:
    """Refuse a buffer that does not match its layout or exceeds the pixel limit.

    Raises :class:`ImageDecodeError` (size mismatch, zero size) or
    :class:`ImageTooLargeError`, before any pixel is touched."""
    if layout.pixel_format not in PIXEL_FORMATS:
        raise ImageDecodeError(f"unknown pixel format {layout.pixel_format!r}")
    if layout.width <= 0 or layout.height <= 0:
        raise ImageDecodeError("raw pixels need a width and a height greater than 0")
    if layout.width * layout.height > max_pixels:
        raise ImageTooLargeError(
            f"image is {layout.width}x{layout.height} = {layout.width * layout.height} "
            f"pixels, over the limit of {max_pixels}"
        )
    if nbytes != layout.nbytes:
        raise ImageDecodeError(
            f"{layout.pixel_format} {layout.width}x{layout.height} needs {layout.nbytes} "
            f"bytes, got {nbytes}"
        )


def raw_pixels(data: bytes, layout: RawLayout, max_pixels: int = 50_000_000) -> np.ndarray:
    """The pixels of a raw buffer: ``HxW`` uint8 for ``mono8``, ``HxWx3`` RGB otherwise.

    The array is a read-only view of ``data`` for ``mono8`` and ``rgb8`` (no copy).
    Errors as :func:`check_layout`."""
    check_layout(layout, len(data), max_pixels)
    channels = PIXEL_FORMATS[layout.pixel_format]
    shape = (layout.height, layout.width) if channels == 1 else (layout.height, layout.width, 3)
    img = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    if layout.pixel_format == "bgr8":
        return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    return img
