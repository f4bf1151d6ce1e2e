"""Task-aligned assignment (TOOD / YOLOv8 style) for the anchor-free head.

Alignment ``t = s^alpha * IoU^beta`` where ``s`` is the predicted score of the GT class and
IoU that of the predicted box; each GT takes its ``topk`` best candidates (anchor points
inside the GT box or within ``radius`` strides of its centre); an anchor claimed by several
GTs keeps the one with the highest IoU. The quality target is ``t`` normalised per GT so
that its best anchor gets that GT's best IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.assign.iou import box_iou


@dataclass
class Assignment:
    """Per-anchor targets: ``fg [B,A]`` bool, ``labels [B,A]`` long, ``boxes [B,A,4]``,
    ``quality [B,A]`` in [0, 1] (0 on background)."""

    fg: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    quality: torch.Tensor


class TaskAlignedAssigner:
    """``t = s^alpha * IoU^beta``, top-k per GT."""

    def __init__(
        self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, radius: float = 2.5
    ) -> None:
        self.topk, self.alpha, self.beta, self.radius = topk, alpha, beta, radius

    @torch.no_grad()
    def __call__(
        self,
        pd_scores: torch.Tensor,
        pd_boxes: torch.Tensor,
        points: torch.Tensor,
        point_strides: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_mask: torch.Tensor,
    ) -> Assignment:
        """``pd_scores [B,A,C]`` (probabilities), ``pd_boxes [B,A,4]`` xyxy, ``points [A,2]``
        anchor centres, ``point_strides [A]``, ``gt_labels [B,M]``, ``gt_boxes [B,M,4]``,
        ``gt_mask [B,M]`` (valid GT rows)."""
        b, a, _ = pd_scores.shape
        m = gt_boxes.shape[1]
        dev = pd_scores.device
        if m == 0 or not bool(gt_mask.any()):
            return Assignment(
                torch.zeros(b, a, dtype=torch.bool, device=dev),
                torch.zeros(b, a, dtype=torch.long, device=dev),
                torch.zeros(b, a, 4, device=dev),
                torch.zeros(b, a, device=dev),
            )
        px, py = points[:, 0], points[:, 1]  # [A]
        x1, y1, x2, y2 = (gt_boxes[..., i, None] for i in range(4))  # [B,M,1]
        in_box = (px > x1) & (px < x2) & (py > y1) & (py < y2)
        r = self.radius * point_strides
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        in_ctr = ((px - cx).abs() < r) & ((py - cy).abs() < r)
        cand = (in_box | in_ctr) & gt_mask[..., None]  # [B,M,A]

        ious = box_iou(gt_boxes, pd_boxes).clamp(min=0)  # [B,M,A]
        idx = gt_labels.long().clamp(min=0)[..., None].expand(b, m, a)
        scores = pd_scores.permute(0, 2, 1).gather(1, idx)  # [B,M,A]
        metric = scores.pow(self.alpha) * ious.pow(self.beta) * cand
        k = min(self.topk, a)
        # rank candidates; non-candidates get -1 so they are never chosen over a candidate
        ranked = torch.where(cand, metric, torch.full_like(metric, -1.0))
        top = ranked.topk(k, dim=-1).indices
        pos = torch.zeros_like(cand).scatter_(-1, top, True) & cand

        multi = pos.sum(1, keepdim=True) > 1  # [B,1,A]
        if bool(multi.any()):
            best = (ious * pos).argmax(1, keepdim=True)  # [B,1,A]
            one = torch.zeros_like(pos).scatter_(1, best, True)
            pos = torch.where(multi, one, pos)
        fg = pos.any(1)  # [B,A]
        gt_idx = pos.float().argmax(1)  # [B,A]
        labels = gt_labels.long().gather(1, gt_idx)
        boxes = gt_boxes.gather(1, gt_idx[..., None].expand(b, a, 4))

        metric = metric * pos
        max_metric = metric.amax(-1, keepdim=True)
        max_iou = (ious * pos).amax(-1, keepdim=True)
        quality = (metric * max_iou / (max_metric + 1e-9)).amax(1) * fg
        return Assignment(fg, labels, boxes, quality)
