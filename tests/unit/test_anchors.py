"""K-means++ (1 - IoU) anchors, BPR, fitness, level split, report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.anchors import (
    anchors_report,
    best_possible_recall,
    kmeans_anchors,
    mean_iou,
    split_levels,
    wh_from_samples,
)
from models.data import Sample
from models.data.formats import write_yolo

CENTRES = np.array([[8, 12], [40, 20], [20, 60], [90, 110]], np.float64)


def synthetic_wh(seed: int = 0, n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c * rng.uniform(0.93, 1.07, (n, 2)) for c in CENTRES])


def test_kmeans_recovers_known_clusters() -> None:
    wh = synthetic_wh()
    anchors = kmeans_anchors(wh, 4, seed=0)
    assert anchors.shape == (4, 2)
    assert (np.diff(anchors.prod(1)) > 0).all()  # sorted by area
    np.testing.assert_allclose(anchors, CENTRES[np.argsort(CENTRES.prod(1))], rtol=0.03)
    assert mean_iou(wh, anchors) > 0.85
    assert best_possible_recall(wh, anchors) == 1.0
    np.testing.assert_array_equal(anchors, kmeans_anchors(wh, 4, seed=0))  # deterministic


def test_fitness_and_bpr_prefer_the_true_anchors() -> None:
    wh = synthetic_wh()
    bad = np.array([[200, 200], [220, 240], [250, 250], [300, 300]], np.float64)
    assert mean_iou(wh, CENTRES) > mean_iou(wh, bad)
    assert best_possible_recall(wh, bad, thr=4.0) < 0.5


def test_split_levels() -> None:
    anchors = np.array([[50, 50], [1, 2], [10, 10], [3, 3], [30, 20], [100, 90]], np.float64)
    levels = split_levels(anchors, 3)
    assert levels == [
        [[1.0, 2.0], [3.0, 3.0]],
        [[10.0, 10.0], [30.0, 20.0]],
        [[50.0, 50.0], [100.0, 90.0]],
    ]
    with pytest.raises(ValueError):
        split_levels(anchors, 4)


def test_too_few_boxes() -> None:
    with pytest.raises(ValueError):
        kmeans_anchors(np.array([[5.0, 5.0]]), 3)


def test_wh_from_samples_uses_letterbox_scale() -> None:
    s = Sample(Path("a.jpg"), 200, 100, np.array([[0, 0, 20, 10]], np.float32), np.array([0]))
    np.testing.assert_allclose(wh_from_samples([s], 100), [[10, 5]])


def test_anchors_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(12):
        path = tmp_path / f"i{i}.png"
        Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(path)
        wh = CENTRES[i % 4] / 4 * rng.uniform(0.9, 1.1, 2)
        samples.append(
            Sample(path, 50, 50, np.array([[1, 1, 1 + wh[0], 1 + wh[1]]]), np.array([i % 2]))
        )
    yaml_path = write_yolo(samples, tmp_path / "ds", "train", ["a", "b"])
    rep = anchors_report(yaml_path, k=4, imgsz=100, levels=2)
    assert rep["k"] == 4 and rep["num_boxes"] == rep["num_images"] == 10
    assert len(rep["anchors"]) == 2 and all(len(lv) == 2 for lv in rep["anchors"])
    assert rep["bpr"] == 1.0 and rep["mean_iou"] > 0.8
