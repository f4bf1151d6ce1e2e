"""The promotion policy of one lineage (a ``promotion`` settings entry)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Policy = Literal["manual", "shadow", "auto"]


class PromotionSpec(BaseModel):
    """What a candidate that passed the gate gets, and when a shadow becomes production."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Policy = Field(
        "manual",
        description="manual: the `candidate` alias, a person promotes; shadow: `shadow` and "
        "`candidate`, promoted when the shadow criteria hold; auto: `production` at once.",
    )
    shadow_min_frames: int = Field(
        1000, ge=1, description="shadow: compared frames needed before a promotion."
    )
    shadow_min_agreement: float = Field(
        0.99, ge=0, le=1, description="shadow: verdict agreement with production needed (0..1)."
    )
    shadow_max_class_rate_delta: float = Field(
        0.02,
        ge=0,
        le=1,
        description="shadow: largest |change| of any class's detection rate (share of frames).",
    )


#: The policy of a lineage that has no ``promotion`` entry.
DEFAULT = PromotionSpec.model_validate({})
