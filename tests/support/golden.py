"""A tiny golden folder (YOLO layout) for the tiny ONNX detector of tiny_onnx.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import defect_image, encode

# 64x64 frames (the tiny model's input size: no letterbox padding); a 16x16 block at
# these corners is a defect the tiny model sees in full.
CORNERS = [(0, 0), (16, 32), (32, 16), (48, 48)]


def _block(x: int, y: int) -> np.ndarray:
    return defect_image(64, 64, (x, y, x + 16, y + 16))


def _yolo(x: int, y: int, cls: int) -> str:
    return f"{cls} {(x + 8) / 64} {(y + 8) / 64} 0.25 0.25\n"


def write_golden(root: Path) -> Path:
    """4 scratch images, 1 dent image, 2 labelled ok, 1 without a label file (left out of
    a golden set); returns ``root`` (its ``data.yaml`` names classes scratch, dent)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    items = [(f"s{i}", _block(x, y), _yolo(x, y, 0)) for i, (x, y) in enumerate(CORNERS)]
    items += [("d0", _block(32, 32), _yolo(32, 32, 1))]
    items += [(f"ok{i}", defect_image(64, 64, (0, 0, 0, 0)), "") for i in range(2)]
    for stem, img, lbl in items:
        (root / "images" / f"{stem}.png").write_bytes(encode(img, "PNG"))
        (root / "labels" / f"{stem}.txt").write_text(lbl)
    (root / "images" / "unlabelled.png").write_bytes(encode(_block(0, 0), "PNG"))
    (root / "data.yaml").write_text("path: .\ntrain: images\nnames: [scratch, dent]\n")
    return root


def write_blocks(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` training images like the golden ones (one 16x16 block, scratch or dent, at a
    random place), a YOLO folder; returns ``root``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        x, y = (int(v) for v in rng.integers(0, 48, 2))
        cls = int(rng.integers(0, 2))
        img = _block(x, y)
        img[0, 0] = (seed * 31 + i) % 256  # unique pixels: no two images dedupe
        (root / "images" / f"b{seed}_{i}.png").write_bytes(encode(img, "PNG"))
        (root / "labels" / f"b{seed}_{i}.txt").write_text(_yolo(x, y, cls))
    (root / "data.yaml").write_text("path: .\ntrain: images\nnames: [scratch, dent]\n")
    return root
