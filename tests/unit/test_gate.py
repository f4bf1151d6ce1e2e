"""The gate's pure logic: escape / false-reject rates, rule verdicts, threshold choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.processing import Detections, verdict
from service.errors import InvalidInput
from service.gate.escape import (
    Rate,
    calibrate_thresholds,
    choose_threshold,
    escape_rates,
    failed_at,
    false_reject_rate,
)
from service.gate.golden import load_golden
from service.gate.rules import GateRules, judge
from service.gate.scoring import ModelScore, RateFigure, max_scores
from tests.conftest import encode

NAMES = ("crack", "dent")


def dets(*rows: tuple[int, float]) -> Detections:
    """Detections of (class, score) rows; boxes do not matter for verdicts."""
    n = len(rows)
    return Detections(
        np.tile(np.array([[0, 0, 10, 10]], np.float32), (n, 1)),
        np.array([s for _, s in rows], np.float32),
        np.array([c for c, _ in rows], np.int64),
    )


# Five images: 0-2 contain a crack (image 2 also a dent), 3 a dent, 4 is labelled ok.
PRESENT = np.array([[1, 0], [1, 0], [1, 1], [0, 1], [0, 0]], bool)
OK = np.array([0, 0, 0, 0, 1], bool)


def test_escape_and_false_reject_from_served_verdicts() -> None:
    served = [dets((0, 0.9)), dets(), dets((1, 0.5)), dets(), dets((0, 0.3))]
    failed = np.array([verdict(d) == "fail" for d in served])
    esc = escape_rates(PRESENT, failed, NAMES)
    # crack: image 1 passes (1 of 3); image 2 is caught by its dent. dent: image 3 escapes.
    assert esc == {"crack": Rate(1, 3), "dent": Rate(1, 2)}
    assert esc["crack"].rate == pytest.approx(1 / 3) and esc["dent"].rate == 0.5
    assert false_reject_rate(OK, failed) == Rate(1, 1)


def test_a_non_failing_class_never_catches_an_image() -> None:
    served = [dets((0, 0.9)), dets(), dets((1, 0.5)), dets(), dets((1, 0.3))]
    failed = np.array([verdict(d, {0}) == "fail" for d in served])  # only crack fails
    # crack: image 2 is no longer caught by its dent (2 of 3); dent: both images pass.
    assert escape_rates(PRESENT, failed, NAMES) == {"crack": Rate(2, 3), "dent": Rate(2, 2)}
    assert false_reject_rate(OK, failed) == Rate(0, 1)
    assert false_reject_rate(np.zeros(5, bool), failed).rate is None  # no ok image


def test_failed_at_matches_the_verdict_on_max_scores() -> None:
    low = [dets((0, 0.9), (0, 0.2)), dets((0, 0.1)), dets((1, 0.5)), dets(), dets((0, 0.3))]
    scores = max_scores(low, 2)
    want = np.array([[0.9, 0], [0.1, 0], [0, 0.5], [0, 0], [0.3, 0]], np.float32)
    assert np.array_equal(scores, want)
    thr = np.array([0.3, 0.4], np.float32)
    assert failed_at(scores, thr, None).tolist() == [True, False, True, False, False]  # 0.3 !> 0.3
    assert failed_at(scores, thr, {1}).tolist() == [False, False, True, False, False]


def test_choose_threshold_is_the_highest_on_the_grid_that_meets_the_target() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1], np.float32)
    c = choose_threshold("crack", scores, target=0.2, current=0.5)
    # 10 images, 2 may escape: the 8th highest (0.3) must be caught -> 0.299.
    assert (c.threshold, c.status, c.own_escape) == (0.299, "met", Rate(2, 10))
    c = choose_threshold("crack", scores, target=0.25, current=0.5)  # floor(2.5) = 2 still
    assert c.threshold == 0.299
    c = choose_threshold("crack", scores, target=0.0, current=0.5)
    assert (c.threshold, c.own_escape) == (0.099, Rate(0, 10))
    assert "too few images" in c.note


def test_choose_threshold_ties_few_images_unreachable_and_no_images() -> None:
    tied = np.array([0.9, 0.6, 0.6, 0.6, 0.2], np.float32)
    c = choose_threshold("dent", tied, target=0.5, current=0.5)  # 2 may escape: catch 3
    assert c.threshold == 0.599 and c.own_escape == Rate(1, 5)  # all three 0.6 caught
    assert "3 images tie" in c.note
    few = choose_threshold("dent", np.array([0.8, 0.4], np.float32), 0.05, 0.5)
    assert few.threshold == 0.399 and "too few images for the target (2 < 20)" in few.note
    gone = choose_threshold("dent", np.array([0.8, 0.0, 0.0], np.float32), 0.05, 0.5)
    assert (gone.status, gone.threshold, gone.own_escape) == ("unreachable", 0.001, Rate(2, 3))
    none = choose_threshold("dent", np.zeros(0, np.float32), 0.05, 0.42)
    assert (none.status, none.threshold) == ("no_images", 0.42)


def test_calibrate_thresholds_per_class_and_informational_classes_kept() -> None:
    scores = np.array([[0.9, 0], [0.4, 0], [0.7, 0.2], [0, 0.6], [0.05, 0.0]], np.float32)
    got = calibrate_thresholds(scores, PRESENT, NAMES, 0.0, [0.5, 0.5], None)
    assert [(c.name, c.threshold) for c in got] == [("crack", 0.399), ("dent", 0.199)]
    got = calibrate_thresholds(scores, PRESENT, NAMES, 0.0, [0.5, 0.5], {0})
    assert (got[1].status, got[1].threshold) == ("not_failing", 0.5)
    with pytest.raises(ValueError):
        calibrate_thresholds(scores, PRESENT, NAMES, 1.0, [0.5, 0.5], None)


def _score(map50: float, esc: dict[str, tuple[int, int]], b8: float) -> ModelScore:
    return ModelScore(
        model="m:1",
        path="/m/1",
        map50=map50,
        map50_95=map50 / 2,
        per_class_ap50={},
        per_class_ap50_95={},
        thresholds={},
        fail_classes=None,
        escape={k: RateFigure.of(Rate(*v)) for k, v in esc.items()},
        false_reject=RateFigure.of(Rate(0, 0)),
        latency_ms={"b1": 1.0, "b8": b8},
        latency_runs=5,
        num_images=10,
    )


def test_rules_pass_at_the_bounds_and_fail_beyond_them() -> None:
    prod = _score(0.70, {"crack": (10, 100), "dent": (0, 0)}, 10.0)
    same = judge(_score(0.70, {"crack": (12, 100), "dent": (0, 0)}, 12.0), prod, GateRules())
    assert [(r.rule, r.passed) for r in same] == [
        ("map50", True),
        ("escape:crack", True),
        ("escape:dent", True),
        ("latency_b8", True),
    ]
    assert same[1].limit == pytest.approx(0.12) and same[3].limit == pytest.approx(12.0)
    worse = judge(_score(0.69, {"crack": (13, 100), "dent": (0, 0)}, 12.5), prod, GateRules())
    assert [r.passed for r in worse] == [False, False, True, False]
    lenient = GateRules(map50_margin=0.02, max_escape_increase=0.05, max_latency_ratio=1.3)
    assert all(r.passed for r in judge(_score(0.69, {"crack": (13, 100)}, 12.5), prod, lenient))
    b1 = judge(_score(0.7, {}, 99.0), prod, GateRules(latency_batch=1))
    assert b1[-1].rule == "latency_b1" and b1[-1].passed


def test_golden_set_reads_the_val_split_and_tells_ok_from_unlabelled(tmp_path: Path) -> None:
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
    frame = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    for stem, label in (("a", "1 0.5 0.5 0.5 0.5\n"), ("ok", ""), ("unlabelled", None)):
        (tmp_path / "images" / "val" / f"{stem}.png").write_bytes(frame)
        if label is not None:
            (tmp_path / "labels" / "val" / f"{stem}.txt").write_text(label)
    (tmp_path / "images" / "train" / "t.png").write_bytes(frame)
    (tmp_path / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames: [crack, dent]\n"
    )
    g = load_golden(tmp_path)  # the folder: its data.yaml, and of it the val split
    assert [s.image_path.name for s in g.samples] == ["a.png", "ok.png"] and g.unlabelled == 1
    assert g.present.tolist() == [[False, True], [False, False]] and g.ok.tolist() == [False, True]
    assert len(g.fingerprint) == 64
    (tmp_path / "labels" / "val" / "a.txt").unlink()
    (tmp_path / "labels" / "val" / "ok.txt").unlink()
    with pytest.raises(InvalidInput, match="no labelled image"):
        load_golden(tmp_path / "data.yaml")
