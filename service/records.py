"""The detection record (../shared/DESIGN.md): the one JSON shape of a result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.processing import Detections


class ModelInfo(BaseModel):
    """Which model version answered."""

    name: str = Field(examples=["neu-det-student"])
    version: int = Field(examples=[2])
    role: str = Field(examples=["student"])


class Detection(BaseModel):
    """One defect: xyxy box in original-image pixels, score and class name."""

    box: list[float] = Field(min_length=4, max_length=4, examples=[[12.0, 40.5, 88.2, 120.0]])
    score: float = Field(examples=[0.91])
    label: str = Field(examples=["scratches"])


class Timing(BaseModel):
    """Milliseconds spent queued, in the model (whole batch), and end to end."""

    queue: float
    inference: float
    total: float


class DetectionRecord(BaseModel):
    """Result of inspecting one frame."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "image": "crazing_1.jpg", "frame_id": "f-000123", "line": "L1", "camera": "c3",
                    "model": {"name": "neu-det-student", "version": 2, "role": "student"},
                    "verdict": "fail",
                    "detections": [
                        {"box": [4.0, 10.0, 96.0, 180.0], "score": 0.91, "label": "crazing"}
                    ],
                    "timing_ms": {"queue": 0.8, "inference": 2.1, "total": 4.0},
                }
            ]
        }
    )  # fmt: skip

    image: str | None = None
    frame_id: str
    line: str | None = None
    camera: str | None = None
    model: ModelInfo
    verdict: Literal["pass", "fail"]
    detections: list[Detection]
    timing_ms: Timing


def detections_to_list(dets: Detections, class_names: Sequence[str]) -> list[Detection]:
    """Convert array detections to record entries (boxes rounded to 0.01 px)."""
    return [
        Detection(
            box=[round(float(v), 2) for v in box],
            score=round(float(s), 4),
            label=class_names[int(c)],
        )
        for box, s, c in zip(dets.boxes, dets.scores, dets.class_ids, strict=True)
    ]
