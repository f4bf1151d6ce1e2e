"""The running comparison of one lineage's shadow with its production version.

A :class:`Tally` counts the comparisons of one (production, shadow) version pair; when
either version changes, the lineage starts a fresh tally, so a summary never mixes
versions. :class:`ShadowSummary` is its snapshot: what ``GET /v1/models/{name}/shadow``
answers and what the promotion policy reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from service.shadow.compare import Comparison


@dataclass(frozen=True)
class ShadowSummary:
    """Shadow vs production since the pair of versions last changed.

    ``agreement`` is the share of compared frames with the same verdict (0 when none
    yet); ``pass_to_fail`` counts frames production passed and the shadow failed.
    ``precision``/``recall`` treat production's detections as the reference (IoU 0.5,
    same label); None until there is a detection to divide by. ``class_rate_delta``:
    per class, the share of compared frames where the shadow detects it minus the same
    share for production."""

    name: str
    production_version: int
    shadow_version: int
    compared: int
    agreement: float
    pass_to_fail: int
    fail_to_pass: int
    precision: float | None
    recall: float | None
    class_rate_delta: dict[str, float]
    dropped: int = 0  # picked for shadowing but not compared (any reason)
    latency_ms_mean: float | None = None  # shadow decode + run + post-processing


@dataclass
class Tally:
    """Counts for one (production, shadow) version pair of a lineage."""

    name: str
    production_version: int
    shadow_version: int
    compared: int = 0
    agree: int = 0
    pass_to_fail: int = 0
    fail_to_pass: int = 0
    matched: int = 0
    production_detections: int = 0
    shadow_detections: int = 0
    production_frames_with: Counter[str] = field(default_factory=Counter)
    shadow_frames_with: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    latency_s_total: float = 0.0

    def add(self, c: Comparison, latency_s: float) -> None:
        """Count one compared frame."""
        self.compared += 1
        if c.outcome == "agree":
            self.agree += 1
        elif c.outcome == "pass_to_fail":
            self.pass_to_fail += 1
        else:
            self.fail_to_pass += 1
        self.matched += c.matched
        self.production_detections += c.production_detections
        self.shadow_detections += c.shadow_detections
        self.production_frames_with.update(c.production_classes)
        self.shadow_frames_with.update(c.shadow_classes)
        self.latency_s_total += latency_s

    @property
    def precision(self) -> float | None:
        """Matched over the shadow's detections; None before any."""
        return self.matched / self.shadow_detections if self.shadow_detections else None

    @property
    def recall(self) -> float | None:
        """Matched over production's detections; None before any."""
        return self.matched / self.production_detections if self.production_detections else None

    def summary(self) -> ShadowSummary:
        """A snapshot of the counts."""
        n = self.compared
        classes = sorted(set(self.production_frames_with) | set(self.shadow_frames_with))
        delta = {
            c: (self.shadow_frames_with[c] - self.production_frames_with[c]) / n if n else 0.0
            for c in classes
        }
        return ShadowSummary(
            name=self.name,
            production_version=self.production_version,
            shadow_version=self.shadow_version,
            compared=n,
            agreement=self.agree / n if n else 0.0,
            pass_to_fail=self.pass_to_fail,
            fail_to_pass=self.fail_to_pass,
            precision=self.precision,
            recall=self.recall,
            class_rate_delta=delta,
            dropped=self.dropped,
            latency_ms_mean=self.latency_s_total / n * 1000 if n else None,
        )
