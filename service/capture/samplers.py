"""Sampling rules: pure, cheap functions of the answered record (microseconds)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from service.capture.spec import SamplerSpec
from service.records import DetectionRecord

#: Per-class served score thresholds of one model version.
Thresholds = Mapping[str, float]


def keeps(
    spec: SamplerSpec, record: DetectionRecord, thresholds: Thresholds, rand: Callable[[], float]
) -> bool:
    """Whether ``spec``'s rule keeps this answered frame (``flagged`` and
    ``disagreement`` are offered explicitly, never by the rule)."""
    if spec.models is not None and record.model.name not in spec.models:
        return False
    if spec.lines is not None and record.line not in spec.lines:
        return False
    kind = spec.kind
    if kind == "random":
        return rand() < spec.fraction
    if kind == "near_threshold":
        eps = spec.epsilon
        return any(abs(d.score - thresholds.get(d.label, 0.0)) <= eps for d in record.detections)
    if kind == "detections_count":
        n = len(record.detections)
        more = spec.more_than is not None and n > spec.more_than
        fewer = spec.fewer_than is not None and n < spec.fewer_than
        return more or fewer
    if kind == "classes":
        wanted = spec.classes
        return any(d.label in wanted for d in record.detections)
    return False


def applies(spec: SamplerSpec, record: DetectionRecord) -> bool:
    """Whether a sampler offered frames explicitly (flagged) covers this model and line."""
    if spec.models is not None and record.model.name not in spec.models:
        return False
    return spec.lines is None or record.line in spec.lines


def default_rand() -> Callable[[], float]:
    """The generator of the random sampler (a module-level RNG is global state)."""
    return random.Random().random
