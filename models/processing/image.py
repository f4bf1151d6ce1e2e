"""Image decoding with a pixel limit checked before any pixel is decoded, fail-safe.

The header is read with Pillow (format, size, pixel limit: a decompression bomb costs
one header read). JPEG pixels are decoded by libjpeg-turbo through simplejpeg in
strict mode: every corrupt-data warning of libjpeg (premature end of data, extraneous
bytes, bad Huffman code, a scan shorter than its SOF header claims) is an error, so a
truncated or damaged frame is refused instead of decoded half grey. A JPEG much larger
than the model input is decoded at 1/2, 1/4 or 1/8 scale in the DCT (a 20-megapixel
frame for a 224 px model decodes ~30x faster). Everything else goes through Pillow,
which refuses truncated data; 16-bit greyscale is scaled to 8 bit (not clipped) and
palette images are expanded through their palette.

A baseline JPEG carries no checksum: a byte flipped inside the entropy-coded data that
leaves the Huffman stream in step decodes to a different but well-formed picture, and
no decoder can tell. Integrity in transit is the transport's (TCP, TLS) job.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from models.processing.errors import ImageDecodeError, ImageTooLargeError

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "MPO"})
# Pillow modes of 16-bit (and 32-bit integer) greyscale: scaled to 8 bit by value range.
_WIDE_GREY = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_UINT16_MAX = 65535


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
    except UnidentifiedImageError:  # its message names the BytesIO object: not for clients
        raise ImageDecodeError("not a decodable image: unknown image format") from None
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"not a decodable image: {exc}") from None
    except Image.DecompressionBombError as exc:  # Pillow's own (higher) hard limit
        raise ImageTooLargeError(str(exc)) from None
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


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _pil_rgb(img: Image.Image) -> np.ndarray:
    """Every pixel of a non-JPEG image as ``HxWx3`` uint8 RGB (or ImageDecodeError)."""
    try:
        img.load()
        if img.mode in _WIDE_GREY:
            wide = np.asarray(img)
            if wide.size and (int(wide.min()) < 0 or int(wide.max()) > _UINT16_MAX):
                raise ImageDecodeError("integer greyscale values outside 0..65535")
            grey = (wide.astype(np.uint32) * 255 + _UINT16_MAX // 2) // _UINT16_MAX
            return _grey_to_rgb(grey.astype(np.uint8))
        if img.mode == "F":
            raise ImageDecodeError("floating-point images are not supported")
        if img.mode in ("P", "PA"):  # through the palette (its transparency dropped)
            img = img.convert("RGBA")
        rgb = img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from None
    return np.asarray(rgb, dtype=np.uint8)


def jpeg_factor(width: int, height: int, fit: int | None) -> int:
    """The DCT scale divisor (1, 2, 4 or 8) for a JPEG of this size and a ``fit`` input:
    the largest reduction that still fills ``fit`` at least twice over."""
    factor = 1
    if fit is not None:
        while factor < 8 and max(width, height) >= fit * factor * 2:
            factor *= 2
    return factor


def _jpeg_rgb(data: bytes, width: int, height: int, factor: int) -> np.ndarray:
    """Decode a whole JPEG at ``1/factor`` scale; any libjpeg warning refuses it."""
    want_h, want_w = -(-height // factor), -(-width // factor)
    try:
        rgb = simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_height=want_h, min_width=want_w, strict=True
        )
    except ValueError as exc:
        raise ImageDecodeError(f"corrupt or truncated JPEG: {exc}") from None
    if rgb.shape != (want_h, want_w, 3):  # the scan does not match the header Pillow read
        raise ImageDecodeError(
            f"JPEG decoded to {rgb.shape[1]}x{rgb.shape[0]}, its header says {width}x{height}"
        )
    return np.asarray(rgb, dtype=np.uint8)


def decode_scaled(
    data: bytes, max_pixels: int = 50_000_000, fit: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode to ``HxWx3`` uint8 RGB, at a reduced scale when that loses nothing for ``fit``.

    With ``fit`` (the model's square input size), a JPEG at least 2x larger than needed
    to fill ``fit`` is decoded at 1/2, 1/4 or 1/8 scale, never below what the letterbox
    resize needs. Returns the pixels and the *original* (width, height), so boxes still
    map back to the full frame. Raises :class:`ImageDecodeError` for empty, truncated or
    corrupt data (a frame is decoded completely and correctly or not at all) and
    :class:`ImageTooLargeError` when ``width*height > max_pixels``.
    """
    img, width, height = probe_image(data, max_pixels)
    if img.format in ("JPEG", "MPO"):  # MPO: the first picture, a baseline JPEG
        return _jpeg_rgb(data, width, height, jpeg_factor(width, height, fit)), (width, height)
    return _pil_rgb(img), (width, height)


def decode_image(data: bytes, max_pixels: int = 50_000_000) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF) to a full-size ``HxWx3`` uint8
    RGB array. Errors as :func:`decode_scaled`."""
    return decode_scaled(data, max_pixels)[0]
