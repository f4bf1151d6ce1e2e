"""The record a shadow disagreement is captured with.

It is production's record (the answer the line acted on: its model, verdict and
detections become the sample's ``model_ref`` and pre-labels) with the shadow's view
added under ``shadow``, so a labeller, and the store's ``record`` column, see both.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from service.records import Detection, DetectionRecord, ModelInfo


class ShadowView(BaseModel):
    """What the shadow version answered for the same frame."""

    model: ModelInfo
    verdict: Literal["pass", "fail"]
    detections: list[Detection]


class ShadowedRecord(DetectionRecord):
    """Production's record of a frame the shadow disagreed on, with the shadow's view."""

    shadow: ShadowView


def noted(production: DetectionRecord, shadow: DetectionRecord) -> ShadowedRecord:
    """``production`` with ``shadow``'s model, verdict and detections noted."""
    view = ShadowView(model=shadow.model, verdict=shadow.verdict, detections=shadow.detections)
    return ShadowedRecord(**production.model_dump(), shadow=view)
