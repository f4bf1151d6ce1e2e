"""Image decoding with a pixel limit checked before any pixel is decoded."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.processing.errors import ImageDecodeError, ImageTooLargeError

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "MPO"})


def probe_image(data: bytes, max_pixels: int) -> tuple[Image.Image, int, int]:
    """Open the image header only and enforce the format and pixel limit.

    Returns the lazily opened PIL image and its (width, height). Nothing is decoded,
    so a decompression bomb is refused for the cost of reading its header.
    """
    if not data:
        raise ImageDecodeError("empty image body")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check is a process-global; we use our own limit instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageDecodeError(f"not a decodable image: {exc}") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own (higher) hard limit
        raise ImageTooLargeError(str(exc)) from exc
    if img.format not in ACCEPTED_FORMATS:
        raise ImageDecodeError(f"unsupported image format {img.format!r}")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError("image has zero size")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )
    return img, width, height


def decode_image(data: bytes, max_pixels: int = 50_000_000) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF) to an ``HxWx3`` uint8 RGB array.

    Raises :class:`ImageDecodeError` for empty, truncated or corrupt data and
    :class:`ImageTooLargeError` when ``width*height > max_pixels``.
    """
    img, _, _ = probe_image(data, max_pixels)
    try:
        img.load()
        rgb = img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8)
