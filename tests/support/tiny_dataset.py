"""A tiny YOLO dataset on disk (grey images with bright and dark rectangles) and the
training options that train a tiny detector on it in well under a second per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("bright", "dark")


def write_tiny_dataset(root: Path, n: int = 8, size: int = 64, seed: int = 0) -> Path:
    """``n`` train and 4 val images with labels; returns the data.yaml path."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("val", 4)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = np.full((size, size, 3), 120, np.uint8)
            rows = []
            for _ in range(2):
                w, h = (int(v) for v in rng.integers(12, 30, 2))
                x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
                c = int(rng.integers(0, 2))
                img[y : y + h, x : x + w] = 235 if c == 0 else 15
                rows.append(f"{c} {(x + w / 2) / size} {(y + h / 2) / size} {w / size} {h / size}")
            Image.fromarray(img).save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(rows) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {list(CLASSES)}\n")
    return data


def tiny_train_params(data: Path, epochs: int) -> dict[str, object]:
    """``lineinspect train`` options, by name, for a fast tiny run on ``data``."""
    return {
        "data": str(data),
        "arch": "tiny",
        "head": "anchor_free",
        "epochs": epochs,
        "imgsz": 64,
        "batch": 4,
        "workers": 0,
        "close_mosaic": 0,
        "mosaic": 0.0,
        "eval_interval": 1000,
        "warmup_epochs": 1.0,
        "device": "cpu",
    }


def tiny_pipeline_params(lineage: str, dataset: str, **overrides: object) -> dict[str, object]:
    """``pipeline`` job parameters that train a tiny teacher and distil a tiny student
    (one epoch each unless overridden) with the options of :func:`tiny_train_params`."""
    common = {k: v for k, v in tiny_train_params(Path("."), 1).items() if k not in ("data",)}
    params: dict[str, object] = {"lineage": lineage, "dataset": dataset, "latency_runs": 2}
    for role in ("teacher", "student"):
        params.update({f"{role}_{k}": v for k, v in common.items()})
    params.update(overrides)
    return params
