"""Pass/fail verdict of one inspected frame."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from models.processing.postprocess import Detections

Verdict = Literal["pass", "fail"]


def verdict(dets: Detections, fail_class_ids: Collection[int] | None = None) -> Verdict:
    """``fail`` when any kept detection belongs to a failing class (all classes by default).

    Score thresholds were already applied per class in :func:`postprocess`; a class
    can be made informational (never failing the part) by leaving it out of the set.
    """
    if len(dets) == 0:
        return "pass"
    if fail_class_ids is None:
        return "fail"
    return "fail" if any(int(c) in fail_class_ids for c in dets.class_ids) else "pass"
