"""CIoU and the CIoU loss for paired xyxy boxes (pairwise IoU lives in models.assign.iou)."""

from __future__ import annotations

import math

import torch

from models.assign.iou import box_iou

__all__ = ["box_iou", "ciou", "ciou_loss"]


def ciou(
    pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7
) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise CIoU of paired boxes ``[..., 4]``; returns ``(ciou, iou)``.

    ``CIoU = IoU - rho^2/c^2 - alpha*v``, ``v = 4/pi^2 (atan(wg/hg) - atan(w/h))^2``,
    ``alpha = v / (1 - IoU + v)`` (no gradient through alpha).
    """
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    pw, ph = (px2 - px1).clamp(min=eps), (py2 - py1).clamp(min=eps)
    tw, th = (tx2 - tx1).clamp(min=eps), (ty2 - ty1).clamp(min=eps)
    iw = (torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
    ih = (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0)
    inter = iw * ih
    iou = inter / (pw * ph + tw * th - inter + eps)
    cw = torch.maximum(px2, tx2) - torch.minimum(px1, tx1)
    ch = torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((px1 + px2 - tx1 - tx2) ** 2 + (py1 + py2 - ty1 - ty2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph)) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - (rho2 / c2 + alpha * v), iou


def ciou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - CIoU`` per box pair (0 for a perfect prediction)."""
    return 1.0 - ciou(pred, target)[0]
