"""The detection record (docs/contracts.md): the one JSON shape of a result."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.processing import Detections, verdict
from service.registry import ModelVersion


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
                    "image": "crazing_1.jpg",
                    "frame_id": "f-000123",
                    "line": "L1",
                    "camera": "c3",
                    "model": {"name": "neu-det-student", "version": 2, "role": "student"},
                    "verdict": "fail",
                    "detections": [
                        {"box": [4.0, 10.0, 96.0, 180.0], "score": 0.91, "label": "crazing"}
                    ],
                    "timing_ms": {"queue": 0.8, "inference": 2.1, "total": 4.0},
                }
            ]
        }
    )

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


@lru_cache(maxsize=64)
def fail_class_ids(
    class_names: tuple[str, ...], fail_classes: tuple[str, ...] | None
) -> frozenset[int] | None:
    """Ids of the classes that fail a part (None = every class); cached per model."""
    if fail_classes is None:
        return None
    return frozenset(i for i, n in enumerate(class_names) if n in fail_classes)


def build_record(
    version: ModelVersion,
    class_names: tuple[str, ...],
    dets: Detections,
    fail_classes: tuple[str, ...] | None,
    *,
    image: str | None,
    frame_id: str,
    line: str | None,
    camera: str | None,
    queue_s: float,
    inference_s: float,
    total_s: float,
) -> DetectionRecord:
    """The record of one inspected frame (every interface and ``predict`` build it here):
    the verdict over ``fail_classes`` (None: every class fails a part), the detections
    and the timings in milliseconds."""
    return DetectionRecord(
        image=image,
        frame_id=frame_id,
        line=line,
        camera=camera,
        model=ModelInfo(name=version.name, version=version.version, role=version.role),
        verdict=verdict(dets, fail_class_ids(class_names, fail_classes)),
        detections=detections_to_list(dets, class_names),
        timing_ms=Timing(
            queue=round(queue_s * 1000, 3),
            inference=round(inference_s * 1000, 3),
            total=round(total_s * 1000, 3),
        ),
    )
