"""pycocotools-backed evaluation sanity: perfect, degraded and empty predictions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from models.data import Sample
from models.evaluate import best_f1_threshold, evaluate_detections

NAMES = ["a", "b", "c"]  # "c" never appears in the ground truth


@dataclass
class Pred:
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


def gt_samples(n: int = 8) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        xy = rng.uniform(0, 100, (2, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(20, 60, (2, 2))], axis=1)
        out.append(Sample(Path(f"{i}.jpg"), 200, 200, boxes, np.array([i % 2, 1])))
    return out


def perfect(samples: list[Sample]) -> list[Pred]:
    return [
        Pred(s.boxes.copy(), np.full(len(s.boxes), 0.9, np.float32), s.labels.copy())
        for s in samples
    ]


def test_perfect_predictions() -> None:
    samples = gt_samples()
    r = evaluate_detections(samples, perfect(samples), NAMES)
    assert r.map50 == pytest.approx(1.0) and r.map50_95 == pytest.approx(1.0)
    assert (r.precision, r.recall, r.f1) == (1.0, 1.0, 1.0)
    d = r.to_dict()
    assert d["per_class"]["c"]["ap50"] is None and d["per_class"]["a"]["ap50"] == pytest.approx(1.0)
    assert d["per_class"]["b"]["num_gt"] == 12


def test_shifted_and_missing_boxes_score_lower() -> None:
    samples = gt_samples()
    shifted = perfect(samples)
    for p in shifted:
        p.boxes[:, [0, 2]] += 3.0  # IoU still > 0.5, but not > 0.95
    r = evaluate_detections(samples, shifted, NAMES)
    assert r.map50 == pytest.approx(1.0) and r.map50_95 < 0.9
    missing = perfect(samples)
    for p in missing[::2]:
        p.boxes, p.scores, p.class_ids = p.boxes[:0], p.scores[:0], p.class_ids[:0]
    r = evaluate_detections(samples, missing, NAMES)
    assert r.map50 < 0.7 and r.recall == pytest.approx(0.5) and r.precision == 1.0


def test_score_threshold_and_false_positives() -> None:
    samples = gt_samples()
    preds = perfect(samples)
    for p in preds:  # a low-score duplicate of class c (no GT) far away
        p.boxes = np.vstack([p.boxes, [[150, 150, 190, 190]]]).astype(np.float32)
        p.scores = np.append(p.scores, 0.1).astype(np.float32)
        p.class_ids = np.append(p.class_ids, 2)
    assert evaluate_detections(samples, preds, NAMES, score_thr=0.25).precision == 1.0
    r = evaluate_detections(samples, preds, NAMES, score_thr=0.05)
    assert r.precision == pytest.approx(2 / 3) and r.map50 == pytest.approx(1.0)


def test_empty_predictions() -> None:
    samples = gt_samples()
    empty = [Pred(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)) for _ in samples]
    r = evaluate_detections(samples, empty, NAMES)
    assert (r.map50, r.map50_95, r.precision, r.recall, r.f1) == (0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        evaluate_detections(samples, empty[:-1], NAMES)


def test_best_f1_threshold_finds_the_gap_between_true_and_false_scores() -> None:
    samples = gt_samples()
    preds = perfect(samples)
    for p in preds:
        p.scores = np.full(len(p.scores), 0.62, np.float32)  # every true detection at 0.62
        # two confident false positives per image at 0.33 (class c has no ground truth)
        p.boxes = np.vstack([p.boxes, [[150, 150, 190, 190], [0, 150, 30, 190]]]).astype(np.float32)
        p.scores = np.append(p.scores, [0.33, 0.33]).astype(np.float32)
        p.class_ids = np.append(p.class_ids, [2, 2])
    best = best_f1_threshold(samples, preds, len(NAMES))
    # any threshold in (0.33, 0.62] is perfect; the sweep picks the lowest such one
    assert best["score_thr"] == pytest.approx(0.35)
    assert best["f1"] == pytest.approx(1.0) and best["precision"] == pytest.approx(1.0)
    low = evaluate_detections(samples, preds, NAMES, score_thr=0.25)
    assert low.precision == pytest.approx(0.5)  # what the old fixed 0.25 would give
