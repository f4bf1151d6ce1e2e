"""Small synthetic labelled image folders in every import format, written with the
training side's own writers (models/data/formats)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from models.data.formats import write_coco, write_voc, write_yolo
from models.data.sample import Sample

CLASSES = ["bright", "dark"]


def png(seed: int, size: int = 64) -> bytes:
    """A unique small PNG (its pixels depend on ``seed``)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def samples(root: Path, n: int, seed: int = 0, size: int = 96) -> list[Sample]:
    """``n`` grey images with two rectangles each (class 0 bright, class 1 dark)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = np.full((size, size, 3), 120, np.uint8)
        img += rng.integers(0, 12, (size, size, 1), dtype=np.uint8)
        boxes, labels = [], []
        for _ in range(2):
            w, h = (int(v) for v in rng.integers(16, 44, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            c = int(rng.integers(0, 2))
            img[y : y + h, x : x + w] = 235 if c == 0 else 15
            boxes.append([x, y, x + w, y + h])
            labels.append(c)
        path = root / f"img{seed}_{i}.png"
        Image.fromarray(img).save(path)
        out.append(Sample(path, size, size, np.array(boxes, np.float32), np.array(labels)))
    return out


def yolo_folder(root: Path, n: int, seed: int = 0) -> Path:
    """A YOLO folder with data.yaml (all images in the train split)."""
    write_yolo(samples(root / "src", n, seed), root, "train", CLASSES)
    return root


def voc_folder(root: Path, n: int, seed: int = 0) -> Path:
    """A Pascal VOC folder."""
    write_voc(samples(root / "src", n, seed), root, CLASSES)
    return root


def coco_folder(root: Path, n: int, seed: int = 0) -> Path:
    """A COCO folder: instances.json + images/."""
    write_coco(samples(root / "src", n, seed), CLASSES, root / "instances.json", root / "images")
    return root
