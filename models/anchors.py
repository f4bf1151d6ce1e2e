"""K-means++ anchor clustering with the ``1 - IoU`` distance on box (w, h) pairs.

Pruning paper §2.1.2 (../shared/papers/pruning-kd-yolov4-surface-defects.txt): K-means++
seeding (next centre drawn with probability D(x)^2 / sum D^2), assignment to the nearest
centre by ``1 - IoU`` (boxes and centres aligned at a common corner, so only w and h
matter), centre update = mean of its members (eq. 2), repeated until assignments stop
changing. One deviation: D(x) in the seeding is also ``1 - IoU`` instead of the paper's
Euclidean distance, so seeding and clustering use the same, scale-free metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.data.config import load_splits
from models.data.sample import Sample

# YOLOv3/v4/v5 default anchors at 640 px, the paper's baseline (rescaled to imgsz in reports).
YOLO_DEFAULT_ANCHORS = np.array(
    [
        [10, 13],
        [16, 30],
        [33, 23],
        [30, 61],
        [62, 45],
        [59, 119],
        [116, 90],
        [156, 198],
        [373, 326],
    ],
    dtype=np.float64,
)


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU ``[N,K]`` of (w, h) pairs with anchors, both aligned at a common corner."""
    wh = np.asarray(wh, dtype=np.float64)[:, None, :]
    an = np.asarray(anchors, dtype=np.float64)[None, :, :]
    inter = np.minimum(wh, an).prod(2)
    iou: np.ndarray = inter / (wh.prod(2) + an.prod(2) - inter)
    return iou


def _sort_by_area(anchors: np.ndarray) -> np.ndarray:
    return anchors[np.argsort(anchors.prod(1), kind="stable")]


def _kmeanspp_init(wh: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        d = 1.0 - wh_iou(wh, np.array(centres)).max(1)
        d2 = d * d
        total = d2.sum()
        idx = rng.choice(len(wh), p=d2 / total) if total > 0 else rng.integers(len(wh))
        centres.append(wh[idx])
    return np.array(centres, dtype=np.float64)


def _lloyd(wh: np.ndarray, centres: np.ndarray, iters: int) -> np.ndarray:
    assign = np.full(len(wh), -1)
    for _ in range(iters):
        iou = wh_iou(wh, centres)
        new = iou.argmax(1)
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(len(centres)):
            members = wh[assign == j]
            if len(members):
                centres[j] = members.mean(0)
            else:  # empty cluster: re-seed at the worst-covered box
                centres[j] = wh[iou.max(1).argmin()]
    return centres


def kmeans_anchors(
    wh: np.ndarray, k: int, seed: int = 0, iters: int = 300, n_init: int = 5
) -> np.ndarray:
    """Cluster ``wh [N,2]`` into ``k`` anchors ``[k,2]`` (float64), sorted by area.

    Runs ``n_init`` seeded K-means++ restarts (generator ``seed``) of at most ``iters``
    Lloyd steps each and keeps the one with the highest :func:`mean_iou`. Boxes with a
    side under 2 px are ignored (as noise) unless that leaves fewer than ``k`` boxes.
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    wh = wh[(wh > 0).all(1)]
    big = wh[(wh >= 2.0).all(1)]
    if len(big) >= k:
        wh = big
    if len(wh) < k:
        raise ValueError(f"need at least k={k} boxes with positive size, got {len(wh)}")
    rng = np.random.default_rng(seed)
    best, best_fit = None, -1.0
    for _ in range(max(1, n_init)):
        centres = _lloyd(wh, _kmeanspp_init(wh, k, rng), iters)
        fit = mean_iou(wh, centres)
        if fit > best_fit:
            best, best_fit = centres, fit
    assert best is not None
    return _sort_by_area(best)


def wh_from_samples(samples: Sequence[Sample], imgsz: int) -> np.ndarray:
    """Box (w, h) ``[N,2]`` in model-input pixels: original sizes times the letterbox scale."""
    out = []
    for s in samples:
        scale = min(imgsz / s.width, imgsz / s.height)
        out.append((s.boxes[:, 2:4] - s.boxes[:, 0:2]).astype(np.float64) * scale)
    return np.concatenate(out).reshape(-1, 2) if out else np.zeros((0, 2))


def mean_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    """Fitness: mean over boxes of the best anchor IoU (what the clustering maximises)."""
    return float(wh_iou(wh, anchors).max(1).mean()) if len(wh) else 0.0


def best_possible_recall(wh: np.ndarray, anchors: np.ndarray, thr: float = 4.0) -> float:
    """Fraction of boxes some anchor can match under the YOLOv5 ratio rule.

    A box matches an anchor when both ``w/aw`` and ``h/ah`` lie in ``[1/thr, thr]``
    (the ``anchor_t`` rule of the anchor-based assigner).
    """
    if len(wh) == 0:
        return 0.0
    r = np.asarray(wh, np.float64)[:, None, :] / np.asarray(anchors, np.float64)[None]
    worst = np.minimum(r, 1.0 / r).min(2)
    return float((worst.max(1) > 1.0 / thr).mean())


def split_levels(anchors: np.ndarray, levels: int) -> list[list[list[float]]]:
    """Split anchors (sorted by area first) into ``levels`` equal groups, smallest first.

    The result is the ``ModelSpec.anchors`` shape: one list of ``[w, h]`` per level in
    stride order. ``len(anchors)`` must be a multiple of ``levels``.
    """
    anchors = _sort_by_area(np.asarray(anchors, np.float64).reshape(-1, 2))
    if levels <= 0 or len(anchors) % levels:
        raise ValueError(f"{len(anchors)} anchors do not split evenly into {levels} levels")
    per = len(anchors) // levels
    return [
        [[float(w), float(h)] for w, h in anchors[i * per : (i + 1) * per]] for i in range(levels)
    ]


def sample_anchors(
    samples: Sequence[Sample], imgsz: int, levels: int, per_level: int = 3, seed: int = 0
) -> list[list[list[float]]]:
    """K-means++ (1 - IoU) anchors in input pixels, one set of ``per_level`` per level."""
    wh = wh_from_samples(samples, imgsz)
    return split_levels(kmeans_anchors(wh, levels * per_level, seed=seed), levels)


def anchors_report(
    data_yaml: Path | str,
    k: int = 9,
    imgsz: int = 224,
    levels: int = 3,
    seed: int = 0,
    val_fraction: float = 0.15,
) -> dict[str, Any]:
    """Cluster anchors on the training split of ``data_yaml`` (JSON-ready dict).

    Uses the same train split as training (``load_splits(..., val_fraction, seed)``), so
    validation boxes never shape the anchors. Reports anchors per level (input pixels,
    rounded to 0.1 px), mean IoU and BPR, and the same two numbers for the YOLO default
    anchors rescaled from 640 px to ``imgsz`` for comparison.
    """
    train, _, names = load_splits(data_yaml, val_fraction=val_fraction, seed=seed)
    wh = wh_from_samples(train, imgsz)
    anchors = kmeans_anchors(wh, k, seed=seed)
    default = YOLO_DEFAULT_ANCHORS * (imgsz / 640.0)
    per_level = split_levels(np.round(anchors, 1), levels)
    return {
        "data": str(data_yaml),
        "classes": names,
        "imgsz": imgsz,
        "k": k,
        "levels": levels,
        "num_images": len(train),
        "num_boxes": len(wh),
        "anchors": per_level,
        "mean_iou": round(mean_iou(wh, anchors), 4),
        "bpr": round(best_possible_recall(wh, anchors), 4),
        "default_anchors_mean_iou": round(mean_iou(wh, default), 4),
        "default_anchors_bpr": round(best_possible_recall(wh, default), 4),
    }
