"""Dynamic soft label assignment (NanoDet-Plus / SimOTA style) for the GFL heads.

Candidates are the anchor points inside a GT box. Their cost for a GT is
``cls + 3·(-log IoU) + 10^(d/s - 3)``: the quality-focal BCE of the guiding predicted
score against the soft target ``IoU·onehot`` (scaled by ``|IoU - p|²``), the IoU cost and
a soft centre prior (``d`` the distance to the GT centre in strides). Each GT takes its
``k`` cheapest candidates, ``k`` = the sum of its top-13 IoUs (at least 1); an anchor
claimed twice keeps its cheapest GT. The guiding predictions are whatever the caller
passes (main head, auxiliary head, or the two fused).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.assign.iou import box_iou
from models.assign.tal import Assignment

INF = 1e8


class DynamicSoftLabelAssigner:
    """SimOTA-style dynamic-k matching with soft IoU targets; ``quality`` = matched IoU."""

    def __init__(self, topk: int = 13, iou_weight: float = 3.0) -> None:
        self.topk, self.iou_weight = topk, iou_weight

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
        """``pd_scores [B,A,C]`` probabilities, ``pd_boxes [B,A,4]`` xyxy px, ``points [A,2]``
        anchor centres, ``point_strides [A]``, ``gt_* [B,M,...]`` with ``gt_mask``."""
        b, a, c = pd_scores.shape
        dev = pd_scores.device
        fg = torch.zeros(b, a, dtype=torch.bool, device=dev)
        labels = torch.zeros(b, a, dtype=torch.long, device=dev)
        boxes = torch.zeros(b, a, 4, device=dev)
        quality = torch.zeros(b, a, device=dev)
        for i in range(b):
            gl, gb = gt_labels[i][gt_mask[i]].long(), gt_boxes[i][gt_mask[i]].float()
            if gl.numel() == 0:
                continue
            px, py = points[:, 0:1], points[:, 1:2]
            inside = (px > gb[:, 0]) & (px < gb[:, 2]) & (py > gb[:, 1]) & (py < gb[:, 3])
            valid = inside.any(1)
            if not bool(valid.any()):
                continue
            idx = valid.nonzero().squeeze(1)
            iou = box_iou(pd_boxes[i][idx].float(), gb).clamp(min=0)  # [V,M]
            ctr = (gb[:, :2] + gb[:, 2:]) / 2
            dist = (points[idx, None, :] - ctr[None]).pow(2).sum(-1).sqrt()
            prior = torch.pow(10.0, dist / point_strides[idx, None] - 3.0)
            p = (
                pd_scores[i][idx]
                .float()
                .clamp(1e-6, 1 - 1e-6)[:, None, :]
                .expand(-1, gl.numel(), c)
            )
            soft = F.one_hot(gl, c).float()[None] * iou[..., None]
            bce = F.binary_cross_entropy(p, soft, reduction="none")
            cls_cost = (bce * (soft - p).abs().pow(2)).sum(-1)
            cost = cls_cost + self.iou_weight * -torch.log(iou + 1e-7) + prior
            cost = cost + (~inside[idx]).float() * INF
            k = iou.topk(min(self.topk, idx.numel()), 0).values.sum(0).int().clamp(min=1)
            rank = cost.argsort(0).argsort(0)  # [V,M]: rank of each candidate per GT
            match = rank < k[None]
            match &= inside[idx]
            multi = match.sum(1) > 1
            if bool(multi.any()):
                best = torch.where(match, cost, torch.full_like(cost, INF)).argmin(1)
                match[multi] = F.one_hot(best[multi], gl.numel()).bool()
            rows = match.any(1)
            if not bool(rows.any()):
                continue
            gi = match.float().argmax(1)[rows]
            sel = idx[rows]
            fg[i, sel] = True
            labels[i, sel] = gl[gi]
            boxes[i, sel] = gb[gi]
            quality[i, sel] = iou[rows, gi]
        return Assignment(fg, labels, boxes, quality)
