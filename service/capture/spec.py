"""The configuration of one capture sampler (a ``capture_samplers`` entry)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["random", "near_threshold", "detections_count", "classes", "disagreement", "flagged"]


class SamplerSpec(BaseModel):
    """Which frames one sampler keeps, into which dataset, and how many at most."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Kind
    dataset: str = Field("captures", description="Dataset the captures go to.")
    models: list[str] | None = Field(None, description="Model names it applies to; None = all.")
    lines: list[str] | None = Field(None, description="Lines it applies to; None = all.")
    fraction: float = Field(0.01, ge=0, le=1, description="random: share of frames kept.")
    epsilon: float = Field(0.05, gt=0, le=1, description="near_threshold: |score - thr| <= eps.")
    more_than: int | None = Field(None, ge=0, description="detections_count: keep if > N.")
    fewer_than: int | None = Field(None, ge=1, description="detections_count: keep if < N.")
    classes: list[str] = Field(default_factory=list, description="classes: keep these labels.")
    per_minute: int | None = Field(None, ge=0, description="Token bucket: captures per minute.")
    per_hour: int | None = Field(None, ge=0, description="Token bucket: captures per hour.")
    per_day: int | None = Field(None, ge=0, description="Token bucket: captures per day.")

    @model_validator(mode="after")
    def _rule_complete(self) -> SamplerSpec:
        if self.kind == "detections_count" and self.more_than is None and self.fewer_than is None:
            raise ValueError(f"sampler {self.name}: detections_count needs more_than or fewer_than")
        if self.kind == "classes" and not self.classes:
            raise ValueError(f"sampler {self.name}: kind classes needs a 'classes' list")
        return self

    def limits(self) -> list[tuple[int, float]]:
        """``(capacity, window seconds)`` of each configured bucket."""
        out = []
        for cap, window in (
            (self.per_minute, 60.0),
            (self.per_hour, 3600.0),
            (self.per_day, 86400.0),
        ):
            if cap is not None:
                out.append((cap, window))
        return out


def default_samplers() -> list[SamplerSpec]:
    """What ``make serve`` captures: 1 % of frames, frames near a threshold, flagged ones."""
    return [
        SamplerSpec.model_validate(
            {"name": "random", "kind": "random", "fraction": 0.01, "per_hour": 60}
        ),
        SamplerSpec.model_validate(
            {"name": "near_threshold", "kind": "near_threshold", "epsilon": 0.05, "per_hour": 120}
        ),
        SamplerSpec.model_validate({"name": "flagged", "kind": "flagged", "per_hour": 600}),
    ]
