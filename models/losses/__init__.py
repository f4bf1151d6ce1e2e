"""Losses: QFocal, CIoU, the adaptive loss weights (eq. 18) and the detection loss."""

from models.losses.adaptive import AdaptiveLossWeights
from models.losses.detection import DEFAULT_GAINS, LOSS_NAMES, DetectionLoss, pad_targets
from models.losses.iou import box_iou, ciou, ciou_loss
from models.losses.qfocal import quality_focal_loss

__all__ = [
    "DEFAULT_GAINS",
    "LOSS_NAMES",
    "AdaptiveLossWeights",
    "DetectionLoss",
    "box_iou",
    "ciou",
    "ciou_loss",
    "pad_targets",
    "quality_focal_loss",
]
