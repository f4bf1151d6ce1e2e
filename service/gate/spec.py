"""The gate's rules as a settings section (``gate_rules``): plain pydantic, so the one
settings class can hold them without importing the scoring code."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GateRules(BaseModel):
    """What a candidate must meet against production (setting ``gate_rules``)."""

    model_config = ConfigDict(extra="forbid")

    map50_margin: float = Field(
        0.0, ge=0, le=1, description="Candidate mAP@.5 may be at most this far below production's."
    )
    max_escape_increase: float = Field(
        0.02,
        ge=0,
        le=1,
        description="No class's image-level escape rate may rise by more than this (0.02 = 2 "
        "points).",
    )
    max_latency_ratio: float = Field(
        1.2, gt=0, description="Candidate latency at most this multiple of production's."
    )
    latency_batch: Literal[1, 8] = Field(
        8, description="Batch size whose latency the rule compares."
    )
