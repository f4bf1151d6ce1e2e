"""Image decoding with a pixel limit checked before any pixel is decoded.

The header is read with Pillow (format, size, pixel limit: a decompression bomb costs
one header read). JPEG pixels are decoded by OpenCV's libjpeg-turbo, about 2x faster
than Pillow for camera frames and able to decode at 1/2, 1/4 or 1/8 scale in the DCT
when the frame is much larger than the model input (a 20-megapixel frame for a 224 px
model decodes ~30x faster). Everything else, and any JPEG that does not end in an
end-of-image marker, goes through Pillow, which refuses truncated data (libjpeg would
return a half-grey frame that could pass inspection).
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from models.processing.errors import ImageDecodeError, ImageTooLargeError

# Frames are small and decoded on the caller's own worker threads: OpenCV's internal
# thread pool would only oversubscribe the cores (and deadlocks in forked loaders).
cv2.setNumThreads(0)

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "MPO"})
_JPEG_EOI = b"\xff\xd9"
# Decode straight to RGB (OpenCV >= 4.10), at full or 1/2, 1/4, 1/8 scale. EXIF
# orientation is ignored on every path (Pillow never applies it): the camera's pixel
# grid is what the model was trained on.
_RGB = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
_CV_FLAGS = {
    1: _RGB,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2 | _RGB,  # the REDUCED_*_N bits carry the scale only
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4 | _RGB,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8 | _RGB,
}


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


def _pil_rgb(img: Image.Image) -> np.ndarray:
    try:
        img.load()
        rgb = img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8)


def _jpeg_complete(data: bytes) -> bool:
    # An EOI marker near the end (cameras may append a few padding bytes).
    return data.rfind(_JPEG_EOI, max(0, len(data) - 1024)) != -1


def decode_scaled(
    data: bytes, max_pixels: int = 50_000_000, fit: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode to ``HxWx3`` uint8 RGB, at a reduced scale when that loses nothing for ``fit``.

    With ``fit`` (the model's square input size), a JPEG at least 2x larger than needed
    to fill ``fit`` is decoded at 1/2, 1/4 or 1/8 scale, never below what the letterbox
    resize needs. Returns the pixels and the *original* (width, height), so boxes still
    map back to the full frame. Raises :class:`ImageDecodeError` for empty, truncated or
    corrupt data and :class:`ImageTooLargeError` when ``width*height > max_pixels``.
    """
    img, width, height = probe_image(data, max_pixels)
    if img.format != "JPEG" or not _jpeg_complete(data):
        return _pil_rgb(img), (width, height)
    factor = 1
    if fit is not None:
        while factor < 8 and max(width, height) >= fit * factor * 2:
            factor *= 2
    buf = np.frombuffer(data, dtype=np.uint8)
    rgb = cv2.imdecode(buf, _CV_FLAGS[factor])
    if rgb is None:  # libjpeg refused it: let Pillow produce the precise error
        return _pil_rgb(img), (width, height)
    return rgb, (width, height)


def decode_image(data: bytes, max_pixels: int = 50_000_000) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF) to a full-size ``HxWx3`` uint8
    RGB array. Errors as :func:`decode_scaled`."""
    return decode_scaled(data, max_pixels)[0]
