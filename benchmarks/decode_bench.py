"""JPEG decode + letterbox cost per frame: the served ``prepare()`` (strict simplejpeg)
beside the OpenCV ``cv2.imdecode`` path it replaces (which does not report corrupt
data), on a 200x200 frame and on a 20-megapixel frame; and what the client's integrity
digest adds (``hashlib.sha256`` of the encoded bytes, checked in ``prepare()``).

    .venv/bin/python -m benchmarks.decode_bench [--size 224] [--repeat 7] [--image F.jpg]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import timeit
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks.common import sample_jpeg
from models.processing import letterbox, probe_image
from models.processing.image import jpeg_factor
from service.inspector import prepare

_RGB = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
_CV_FLAGS = {
    1: _RGB,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2 | _RGB,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4 | _RGB,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8 | _RGB,
}


def opencv_prepare(data: bytes, size: int, max_pixels: int) -> np.ndarray:
    """The OpenCV decode path: Pillow header probe, ``cv2.imdecode`` (DCT-scaled), letterbox."""
    _, width, height = probe_image(data, max_pixels)
    factor = jpeg_factor(width, height, size)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), _CV_FLAGS[factor])
    return letterbox(img, size, orig_size=(width, height))[0]


def big_jpeg(width: int = 5472, height: int = 3648) -> bytes:
    """A 20-megapixel camera-like frame: smooth shading plus sensor noise, quality 90."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 110 + 60 * np.sin(x / 311.0) * np.cos(y / 257.0)
    noise = np.random.default_rng(0).normal(0, 6, (height, width)).astype(np.float32)
    grey = np.clip(base + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    """Best of ``repeat`` timeit runs, in milliseconds per call."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat, number)) / number * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224, help="model input size (letterbox)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--image", type=Path, help="small JPEG to time (default: sample_jpeg())")
    args = ap.parse_args()
    small, name = (args.image.read_bytes(), args.image.name) if args.image else sample_jpeg()
    size = "x".join(map(str, Image.open(io.BytesIO(small)).size))
    frames = {f"{name} {size}": small, "synthetic 5472x3648 (20 MP)": big_jpeg()}
    limit = 50_000_000
    print(f"letterbox to {args.size}; best of {args.repeat}; ms per frame, one thread")
    print(
        f"{'frame':32} {'bytes':>9} {'opencv imdecode':>16} {'prepare (strict)':>17} "
        f"{'ratio':>6} {'sha256':>8} {'prepare+digest':>15}"
    )
    for label, data in frames.items():
        assert (
            opencv_prepare(data, args.size, limit).shape == prepare(data, args.size, limit)[0].shape
        )
        digest = hashlib.sha256(data).digest()
        cv_ms = best_ms(lambda d=data: opencv_prepare(d, args.size, limit), args.repeat)
        sj_ms = best_ms(lambda d=data: prepare(d, args.size, limit), args.repeat)
        sha_ms = best_ms(lambda d=data: hashlib.sha256(d).digest(), args.repeat)
        dg_ms = best_ms(
            lambda d=data, g=digest: prepare(d, args.size, limit, sha256=g), args.repeat
        )
        print(
            f"{label:32} {len(data):9d} {cv_ms:16.3f} {sj_ms:17.3f} {sj_ms / cv_ms:6.2f} "
            f"{sha_ms:8.3f} {dg_ms:15.3f}"
        )


if __name__ == "__main__":
    main()
