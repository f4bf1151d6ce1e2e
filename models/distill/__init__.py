"""Knowledge distillation of the S-model (or a LIDD-Net) from the T-model: GT masks,
attention masks, attention-guided feature distillation, response distillation (into a
YOLOX-like or a GFL head), the total loss (eq. 17) and the trainer/CLI glue. See
docs/distillation.md."""

from models.distill.attention import attention_masks, channel_attention, spatial_attention
from models.distill.feature import FEATURE_TERMS, FeatureDistiller, GlobalContext, LevelDistiller
from models.distill.loss import DEFAULT_KD_GAINS, DistillationLoss, DistillConfig
from models.distill.masks import FgBgMasks, box_cells, fg_bg_masks, masks_from_targets
from models.distill.response import (
    RESPONSE_TERMS,
    ResponseDistiller,
    bounded_regression_loss,
    soft_class_loss,
    soft_objectness_loss,
)
from models.distill.response_gfl import GFL_RESPONSE_TERMS, GFLResponseDistiller

__all__ = [
    "DEFAULT_KD_GAINS",
    "FEATURE_TERMS",
    "GFL_RESPONSE_TERMS",
    "RESPONSE_TERMS",
    "DistillConfig",
    "DistillationLoss",
    "FeatureDistiller",
    "FgBgMasks",
    "GFLResponseDistiller",
    "GlobalContext",
    "LevelDistiller",
    "ResponseDistiller",
    "attention_masks",
    "bounded_regression_loss",
    "box_cells",
    "channel_attention",
    "fg_bg_masks",
    "masks_from_targets",
    "soft_class_loss",
    "soft_objectness_loss",
    "spatial_attention",
]
