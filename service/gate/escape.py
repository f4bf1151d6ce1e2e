"""Image-level escape and false-reject rates, and the per-class thresholds that bound them.

An image *escapes* when it contains a defect yet its verdict is ``pass``; the escape rate
of class ``c`` is the share of golden images containing ``c`` that escape. The
false-reject rate is the share of golden images labelled ok (no box) answered ``fail``.

Calibration works on each image's highest score per class among its detections at the
evaluation threshold (0.001): at per-class thresholds ``T`` the served post-processing
keeps a detection of class ``c`` iff some candidate of ``c`` scores above ``T[c]``, and
class-aware NMS never suppresses a class's top candidate, so an image fails at ``T``
exactly when ``max_score[c] > T[c]`` for some failing class ``c``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

#: Thresholds are chosen on this grid: readable, and never above the score they must catch.
THRESHOLD_STEP = 0.001
#: The evaluation threshold: no score below it is known, so no threshold goes below it.
MIN_THRESHOLD = 0.001


@dataclass(frozen=True)
class Rate:
    """``count`` of ``total`` images; ``rate`` is ``None`` when ``total`` is 0."""

    count: int
    total: int

    @property
    def rate(self) -> float | None:
        """``count / total``, or ``None`` without images."""
        return self.count / self.total if self.total else None


def escape_rates(
    present: np.ndarray, failed: np.ndarray, class_names: Sequence[str]
) -> dict[str, Rate]:
    """Per class: images containing it (``present [N,C]`` bool) answered pass (``failed [N]``
    False)."""
    present, failed = np.asarray(present, bool), np.asarray(failed, bool)
    return {
        name: Rate(int((present[:, c] & ~failed).sum()), int(present[:, c].sum()))
        for c, name in enumerate(class_names)
    }


def false_reject_rate(ok: np.ndarray, failed: np.ndarray) -> Rate:
    """Images labelled ok (``ok [N]`` bool) answered fail."""
    ok, failed = np.asarray(ok, bool), np.asarray(failed, bool)
    return Rate(int((ok & failed).sum()), int(ok.sum()))


def failed_at(
    max_scores: np.ndarray, thresholds: np.ndarray, fail_ids: Collection[int] | None
) -> np.ndarray:
    """Verdict ``fail`` per image (``[N]`` bool) at per-class ``thresholds`` from the images'
    highest score per class ``max_scores [N,C]`` (0 where a class has no detection)."""
    scores = np.asarray(max_scores, np.float32)
    above = scores > np.asarray(thresholds, np.float32)[None, :]
    if fail_ids is not None:
        mask = np.zeros(scores.shape[1], bool)
        mask[list(fail_ids)] = True
        above &= mask[None, :]
    return np.asarray(above.any(axis=1))


@dataclass(frozen=True)
class ClassChoice:
    """The threshold calibration chose for one class, and why."""

    name: str
    threshold: float
    images: int
    own_escape: Rate  # images of this class not caught by its own detections at threshold
    status: str  # "met", "unreachable", "no_images", "not_failing"
    note: str


def _grid_below(score: float) -> float:
    """The highest grid threshold a detection scoring ``score`` still passes (``>``)."""
    t = math.floor(score / THRESHOLD_STEP) * THRESHOLD_STEP
    while t >= MIN_THRESHOLD and np.float32(score) <= np.float32(t):
        t -= THRESHOLD_STEP
    return round(max(t, MIN_THRESHOLD), 6)


def choose_threshold(
    name: str, scores: np.ndarray, target: float, current: float, failing: bool = True
) -> ClassChoice:
    """The highest threshold at which this class's own detections catch enough of the
    golden images containing it (``scores``: each such image's highest score of the class)
    for an escape rate of at most ``target``.

    Detections of other failing classes also fail an image, so the escape rate served
    (reported by the caller) can only be lower than ``own_escape``.
    """
    s = np.sort(np.asarray(scores, np.float32))[::-1]
    n = int(s.size)
    if not failing:
        return ClassChoice(
            name,
            current,
            n,
            Rate(0, n),
            "not_failing",
            "not a failing class: its detections never fail a part; kept",
        )
    if n == 0:
        return ClassChoice(
            name, current, 0, Rate(0, 0), "no_images", "no golden image contains it: threshold kept"
        )
    allowed = math.floor(target * n + 1e-9)  # escapes the target allows
    needed = n - allowed
    notes: list[str] = []
    if allowed == 0:
        notes.append(
            f"too few images for the target ({n} < {math.ceil(1 / target) if target else 'inf'}"
            "): every image must be caught, so its weakest one sets the threshold"
        )
    boundary = float(s[needed - 1])
    if boundary <= MIN_THRESHOLD:
        t = MIN_THRESHOLD
        status = "unreachable"
        notes.append(
            f"only {int((s > MIN_THRESHOLD).sum())} of {n} images have a detection of it "
            f"above {MIN_THRESHOLD}: the target cannot be met by its own detections"
        )
    else:
        t, status = _grid_below(boundary), "met"
        tied = int((s == s[needed - 1]).sum())
        if tied > 1:
            notes.append(f"{tied} images tie at the boundary score {boundary:.4f}; all are caught")
    escaped = int((s <= np.float32(t)).sum())
    return ClassChoice(name, t, n, Rate(escaped, n), status, "; ".join(notes))


def calibrate_thresholds(
    max_scores: np.ndarray,
    present: np.ndarray,
    class_names: Sequence[str],
    target: float,
    current: Sequence[float] | np.ndarray,
    fail_ids: Collection[int] | None,
) -> list[ClassChoice]:
    """One :func:`choose_threshold` per class from the golden images' ``max_scores [N,C]``
    and ``present [N,C]`` (which classes each image contains)."""
    if not 0 <= target < 1:
        raise ValueError(f"target escape rate must be within [0, 1), got {target}")
    present = np.asarray(present, bool)
    return [
        choose_threshold(
            name,
            np.asarray(max_scores)[present[:, c], c],
            target,
            float(current[c]),
            failing=fail_ids is None or c in fail_ids,
        )
        for c, name in enumerate(class_names)
    ]
