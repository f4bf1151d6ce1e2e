"""Fast decoding: strict simplejpeg for JPEG (full or DCT-reduced scale), Pillow for the rest,
truncation refused, one-pass batch assembly, and the ORT thread split."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from models.evaluate import load_eval_images
from models.processing import (
    ImageDecodeError,
    batch_inputs,
    decode_image,
    decode_scaled,
    letterbox,
    preprocess_batch,
    to_tensor,
)
from service.engine import auto_intra_op_threads
from service.inspector import prepare
from tests.conftest import encode


def smooth_image(w: int, h: int) -> np.ndarray:
    """A smooth RGB gradient (JPEG keeps it nearly intact, so scales can be compared)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 255 * x / w
    g = 255 * y / h
    b = 127 + 100 * np.sin(x / 97.0) * np.cos(y / 131.0)
    return np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)


def test_jpeg_decodes_like_pillow() -> None:
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    data = encode(img, "JPEG")
    ours = decode_image(data)
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert ours.shape == (48, 64, 3) and ours.dtype == np.uint8
    # Both are libjpeg-turbo; allow one level for a different IDCT/upsampling build.
    assert np.abs(ours.astype(int) - pillow).max() <= 1


def test_grayscale_jpeg_becomes_rgb() -> None:
    gray = (np.arange(40 * 30) % 251).astype(np.uint8).reshape(30, 40)
    buf = io.BytesIO()
    Image.fromarray(gray, "L").save(buf, "JPEG", quality=95)
    out = decode_image(buf.getvalue())
    assert out.shape == (30, 40, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_large_jpeg_is_decoded_reduced_and_maps_to_the_full_frame() -> None:
    full = smooth_image(1800, 1200)
    data = encode(full, "JPEG")
    small, orig = decode_scaled(data, fit=224)
    assert orig == (1800, 1200)
    assert small.shape == (150, 225, 3)  # 1/8: still >= the 224 x 149 letterbox needs
    boxed_r, info_r = letterbox(small, 224, orig_size=orig)
    boxed_f, info_f = letterbox(decode_image(data), 224)
    assert info_r == info_f  # same mapping back to original pixels
    assert boxed_r.shape == boxed_f.shape == (224, 224, 3)
    assert np.abs(boxed_r.astype(int) - boxed_f).mean() < 2.0


@pytest.mark.parametrize(
    ("size", "fit", "shape"),
    [((300, 200), 224, (200, 300)), ((500, 460), 224, (230, 250)), ((2000, 100), 224, (13, 250))],
)
def test_reduction_never_goes_below_the_letterbox_size(
    size: tuple[int, int], fit: int, shape: tuple[int, int]
) -> None:
    data = encode(smooth_image(*size), "JPEG")
    img, orig = decode_scaled(data, fit=fit)
    assert orig == size and img.shape[:2] == shape
    scale = fit / max(size)  # what the letterbox resize needs, in each dimension
    assert img.shape[1] >= round(size[0] * scale) and img.shape[0] >= round(size[1] * scale)


def test_truncated_jpeg_is_refused_but_trailing_bytes_are_fine() -> None:
    data = encode(smooth_image(120, 80), "JPEG")
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])
    assert decode_image(data + b"\x00" * 16).shape == (80, 120, 3)


def test_exif_orientation_is_ignored() -> None:
    img = Image.fromarray(smooth_image(64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert decode_image(buf.getvalue()).shape == (32, 64, 3)  # the sensor's grid


def test_batch_inputs_mixes_pixels_and_tensors() -> None:
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    expected, _ = preprocess_batch(imgs, 32)
    boxed = [letterbox(im, 32)[0] for im in imgs]
    mixed = [boxed[0], to_tensor(boxed[1]), boxed[2]]
    out = batch_inputs(mixed)
    assert out.dtype == np.float32 and out.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(out[1], boxed[1].transpose(2, 0, 1) / 255.0, rtol=1e-6)


def test_auto_intra_op_threads_shares_the_cores() -> None:
    assert auto_intra_op_threads(3, 2) == 3  # explicit wins
    cores = auto_intra_op_threads(0, 1)
    assert cores >= 1
    assert auto_intra_op_threads(0, 2) == max(1, cores // 2)
    assert auto_intra_op_threads(0, 64) == 1


def test_evaluation_feeds_the_model_what_serving_feeds_it(tmp_path: Path) -> None:
    """The accuracy measured is the accuracy served: for a JPEG large enough to be decoded
    at a reduced scale, ``val`` / training evaluation and the server give the model the
    same tensor and map boxes back with the same letterbox."""
    data = encode(smooth_image(1280, 960), "JPEG")
    path = tmp_path / "frame.jpg"
    path.write_bytes(data)
    images, sizes = load_eval_images([SimpleNamespace(image_path=path)], 224)
    evaluated, infos = preprocess_batch(images, 224, sizes)
    served, info, size = prepare(data, 224, max_pixels=50_000_000)
    assert sizes == [size] == [(1280, 960)] and infos == [info]
    np.testing.assert_array_equal(evaluated, batch_inputs([served]))
    full, _ = preprocess_batch([decode_image(data)], 224)  # a full-size decode, as training reads
    assert not np.array_equal(full, evaluated)
