"""Comparing a shadow record with production's for the same frame (pure functions).

Production's answer is the reference: a shadow detection that overlaps a production
detection of the same label at IoU >= 0.5 is a match (greedy, highest shadow score
first, each production detection matched once). Shadow precision is matches over the
shadow's detections, recall matches over production's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from service.records import Detection, DetectionRecord

MATCH_IOU = 0.5

Outcome = Literal["agree", "pass_to_fail", "fail_to_pass"]
OUTCOMES: tuple[Outcome, ...] = ("agree", "pass_to_fail", "fail_to_pass")


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 for empty ones)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_count(
    production: Sequence[Detection], shadow: Sequence[Detection], iou_thr: float = MATCH_IOU
) -> int:
    """Shadow detections matched one-to-one to production's (same label, IoU >= thr)."""
    free = list(range(len(production)))
    matched = 0
    for s in sorted(shadow, key=lambda d: -d.score):
        best, best_iou = -1, iou_thr
        for i in free:
            p = production[i]
            if p.label != s.label:
                continue
            v = iou(p.box, s.box)
            if v >= best_iou:
                best, best_iou = i, v
        if best >= 0:
            free.remove(best)
            matched += 1
    return matched


def outcome(production: str, shadow: str) -> Outcome:
    """The verdict outcome: ``pass_to_fail`` means production passed and shadow failed."""
    if production == shadow:
        return "agree"
    return "pass_to_fail" if production == "pass" else "fail_to_pass"


@dataclass(frozen=True)
class Comparison:
    """One frame's comparison."""

    outcome: Outcome
    matched: int
    production_detections: int
    shadow_detections: int
    production_classes: frozenset[str]
    shadow_classes: frozenset[str]

    @property
    def disagrees(self) -> bool:
        """Verdicts differ, or a detection of either side is unmatched."""
        return self.outcome != "agree" or not (
            self.matched == self.production_detections == self.shadow_detections
        )


def compare(production: DetectionRecord, shadow: DetectionRecord) -> Comparison:
    """Compare the shadow's record of a frame with production's."""
    return Comparison(
        outcome=outcome(production.verdict, shadow.verdict),
        matched=match_count(production.detections, shadow.detections),
        production_detections=len(production.detections),
        shadow_detections=len(shadow.detections),
        production_classes=frozenset(d.label for d in production.detections),
        shadow_classes=frozenset(d.label for d in shadow.detections),
    )
