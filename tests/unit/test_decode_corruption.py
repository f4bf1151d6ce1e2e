"""Fail-safe decoding: a frame is decoded completely and correctly, or refused.

Each corrupted variant of an intact JPEG is either refused with ImageDecodeError or
decodes bit-identical to the intact frame; 16-bit greyscale and palette images are
converted correctly. Bytes flipped inside the entropy-coded data are beyond any
decoder: with the client's SHA-256 (``prepare(..., sha256=)``) every case, those
included, is refused before the decode.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from models.processing import ImageDecodeError, decode_image, decode_scaled
from service.errors import InvalidImage
from service.inspector import prepare
from tests.conftest import defect_image, encode
from tests.support.corrupt import flipped_bytes, jpeg_corpus, palette_png, png16


def textured(width: int = 200, height: int = 160) -> np.ndarray:
    """The tiny detector's defect frame with sensor-like noise (a realistic scan)."""
    rng = np.random.default_rng(7)
    noise = rng.integers(-15, 16, (height, width, 3))
    return (defect_image(width, height).astype(int) + noise).clip(0, 255).astype(np.uint8)


INTACT = encode(textured())
CORPUS = jpeg_corpus(INTACT)
FLIPPED = flipped_bytes(INTACT)
INTACT_SHA256 = hashlib.sha256(INTACT).digest()


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corrupt_jpeg_is_refused_or_decodes_identically(case: str) -> None:
    reference = decode_image(INTACT)
    try:
        out = decode_image(CORPUS[case])
    except ImageDecodeError as exc:
        assert " at 0x" not in str(exc)  # no object reprs reach a client
        return
    np.testing.assert_array_equal(out, reference)


@pytest.mark.parametrize("case", ["truncated-25%+eoi", "sof-7000x7000", "stray-rst-50%"])
def test_known_corruptions_are_refused(case: str) -> None:
    """The probes of the field: half-grey frames and lying headers never decode."""
    with pytest.raises(ImageDecodeError):
        decode_image(CORPUS[case])


@pytest.mark.parametrize("case", ["truncated-50%+eoi", "sof-7000x7000", "sof-double"])
def test_corruption_is_refused_at_reduced_scale_too(case: str) -> None:
    with pytest.raises(ImageDecodeError):
        decode_scaled(CORPUS[case], fit=24)  # 1/8 DCT scale: the cheap path checks too


def test_prepare_answers_invalid_image() -> None:
    with pytest.raises(InvalidImage):
        prepare(CORPUS["truncated-50%+eoi"], 64, 50_000_000)


@pytest.mark.parametrize("case", sorted(CORPUS | FLIPPED))
def test_with_the_digest_every_corrupt_frame_is_refused(case: str) -> None:
    with pytest.raises(InvalidImage, match="SHA-256"):
        prepare((CORPUS | FLIPPED)[case], 64, 50_000_000, sha256=INTACT_SHA256)


def test_with_the_digest_the_intact_frame_prepares_as_without() -> None:
    with_digest = prepare(INTACT, 64, 50_000_000, sha256=INTACT_SHA256)
    np.testing.assert_array_equal(with_digest[0], prepare(INTACT, 64, 50_000_000)[0])


def test_without_the_digest_flipped_bytes_mostly_decode_to_another_picture() -> None:
    """Why the digest exists: the decoder cannot tell (docs/benchmarks.md). Each flip is
    refused or decodes to a well-formed frame of the intact size; most are the latter."""
    reference = decode_image(INTACT)
    different = 0
    for data in FLIPPED.values():
        try:
            out = decode_image(data)
        except ImageDecodeError:
            continue
        assert out.shape == reference.shape
        different += not np.array_equal(out, reference)
    assert different > len(FLIPPED) // 2


def test_16_bit_greyscale_png_is_scaled_not_clipped() -> None:
    grey = np.linspace(0, 65535, 160 * 200).reshape(160, 200).astype(np.uint16)
    out = decode_image(png16(grey))
    assert out.shape == (160, 200, 3) and out.dtype == np.uint8
    expected = np.round(grey / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert (out[..., 0] == out[..., 2]).all()
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) == 256


def test_16_bit_png_of_8_bit_content_decodes_like_the_8_bit_frame() -> None:
    """The detector sees the same frame whether the camera wrote 8 or 16 bits."""
    grey8 = textured()[..., 0]
    via16 = decode_image(png16(grey8.astype(np.uint16) * 257))
    np.testing.assert_array_equal(via16, decode_image(encode(np.stack([grey8] * 3, -1), "PNG")))


def test_16_bit_tiff_greyscale_is_scaled() -> None:
    grey = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "TIFF")
    out = decode_image(buf.getvalue())
    np.testing.assert_array_equal(out[..., 1], np.round(grey / 257.0).astype(np.uint8))


def test_palette_png_goes_through_its_palette() -> None:
    rgb = textured(64, 48)
    data = palette_png(rgb)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    out = decode_image(data)
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out.astype(int) - rgb).mean() < 8  # close to the true colours


def test_truncated_16_bit_png_is_refused() -> None:
    data = png16(np.full((160, 200), 40000, np.uint16))
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("JPEG", "RGB", {"progressive": True}),
        ("JPEG", "RGB", {"restart_marker_blocks": 4}),
        ("JPEG", "L", {}),
        ("JPEG", "CMYK", {}),
        ("MPO", "RGB", {"save_all": True}),
    ],
    ids=["progressive", "restart-markers", "greyscale", "cmyk", "mpo"],
)
def test_strict_decoding_accepts_every_intact_jpeg_flavour(
    fmt: str, mode: str, options: dict[str, object]
) -> None:
    img = Image.fromarray(textured()).convert(mode)
    buf = io.BytesIO()
    if fmt == "MPO":
        options = {**options, "append_images": [img]}
    img.save(buf, fmt, **options)
    data = buf.getvalue()
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert np.abs(decode_image(data).astype(int) - pillow).max() <= 1
