"""The GFL loss of LIDD-Net (NanoDet-Plus weights): quality focal loss on the joint class
score (target: IoU of the predicted box with its assigned GT), CIoU on decoded boxes and
distribution focal loss on the DFL logits, both weighted by the predicted score; the
assignment (models/assign/dsl.py) is guided by the main head, the auxiliary head, or
the two fused (LATM), and the auxiliary head is trained on the same assignment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from models.assign.dsl import DynamicSoftLabelAssigner
from models.assign.tal import Assignment
from models.detectors.gfl_head import dfl_integral
from models.losses.detection import pad_targets
from models.losses.iou import ciou, ciou_loss
from models.losses.qfocal import quality_focal_loss

GFL_LOSS_NAMES = ("cls", "box", "dfl", "aux")
GFL_GAINS = {"cls": 1.0, "box": 2.0, "dfl": 0.25, "aux": 1.0}


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL: ``[N, R+1]`` logits, ``[N]`` continuous targets in ``[0, R)`` → ``[N]``."""
    left = target.long()
    wl = left.float() + 1 - target
    return F.cross_entropy(logits, left, reduction="none") * wl + F.cross_entropy(
        logits, left + 1, reduction="none"
    ) * (1 - wl)


def level_points(
    outs: Sequence[torch.Tensor], strides: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres ``[A,2]`` (px, ``(g + 0.5)·s``) and strides ``[A]`` of ``[B,H,W,K]`` levels."""
    pts, st = [], []
    for o, s in zip(outs, strides, strict=True):
        h, w = int(o.shape[1]), int(o.shape[2])
        ys, xs = torch.meshgrid(
            torch.arange(h, device=o.device), torch.arange(w, device=o.device), indexing="ij"
        )
        pts.append((torch.stack((xs.reshape(-1), ys.reshape(-1)), 1).float() + 0.5) * s)
        st.append(torch.full((h * w,), float(s), device=o.device))
    return torch.cat(pts), torch.cat(st)


class GFLLoss:
    """``(total, parts)`` from :class:`LIDDNet` training outputs; parts per GFL_LOSS_NAMES."""

    names = GFL_LOSS_NAMES

    def __init__(
        self,
        strides: Sequence[int],
        num_classes: int,
        reg_max: int,
        guidance: str,
        gains: dict[str, float] | None = None,
    ) -> None:
        self.strides, self.nc, self.reg_max = tuple(strides), num_classes, reg_max
        self.guidance = guidance
        self.gains = dict(GFL_GAINS, **(gains or {}))
        self.assigner = DynamicSoftLabelAssigner()

    @classmethod
    def for_model(cls, model: Any) -> GFLLoss:
        """The loss matching a :class:`models.detectors.lidd.LIDDNet`."""
        return cls(model.strides, model.num_classes, model.cfg.reg_max, model.cfg.guidance)

    def _decode(
        self, outs: Sequence[torch.Tensor], points: torch.Tensor, strides: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = outs[0].shape[0]
        raw = torch.cat([o.reshape(b, -1, int(o.shape[-1])) for o in outs], 1).float()
        cls, reg = raw[..., : self.nc], raw[..., self.nc :]
        d = dfl_integral(reg, self.reg_max) * strides[:, None]
        boxes = torch.cat((points - d[..., :2], points + d[..., 2:]), -1)
        return cls, reg.reshape(b, -1, 4, self.reg_max + 1), boxes

    def __call__(
        self,
        outs: Sequence[torch.Tensor],
        targets: torch.Tensor,
        weights: dict[str, float] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = len(self.strides)
        points, strides = level_points(outs[:n], self.strides)
        cls, reg, boxes = self._decode(outs[:n], points, strides)
        aux = self._decode(outs[n:], points, strides) if len(outs) > n else None
        if self.guidance == "none" or aux is None:
            g_scores, g_boxes = cls.sigmoid(), boxes
        elif self.guidance == "agm":
            g_scores, g_boxes = aux[0].sigmoid(), aux[2]
        else:  # latm: the auxiliary and main predictions fused
            g_scores = (cls.sigmoid() + aux[0].sigmoid()) / 2
            g_boxes = (boxes + aux[2]) / 2
        labels, gt_boxes, mask = pad_targets(targets, cls.shape[0])
        asg = self.assigner(
            g_scores.detach(), g_boxes.detach(), points, strides, labels, gt_boxes, mask
        )
        parts = self._head(cls, reg, boxes, asg, points, strides)
        if aux is not None:
            ap = self._head(*aux, asg, points, strides)
            parts["aux"] = sum(self.gains[k] * v for k, v in ap.items())  # type: ignore[assignment]
        else:
            parts["aux"] = cls.sum() * 0.0
        w = weights or {}
        total = sum(self.gains[k] * w.get(k, 1.0) * parts[k] for k in GFL_LOSS_NAMES)
        assert isinstance(total, torch.Tensor)
        return total, {k: v.detach() for k, v in parts.items()}

    def _head(
        self,
        cls: torch.Tensor,
        reg: torch.Tensor,
        boxes: torch.Tensor,
        asg: Assignment,
        points: torch.Tensor,
        strides: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        fg = asg.fg
        score = torch.zeros_like(cls)
        if not bool(fg.any()):
            zero = cls.sum() * 0.0 + reg.sum() * 0.0
            return {"cls": quality_focal_loss(cls, score).sum(), "box": zero, "dfl": zero}
        pb, tb = boxes[fg], asg.boxes[fg]
        iou = ciou(pb.detach(), tb)[1].clamp(min=0)
        bi, ai = fg.nonzero(as_tuple=True)
        score[bi, ai, asg.labels[fg]] = iou
        npos = max(int(fg.sum()), 1)
        cls_loss = quality_focal_loss(cls, score).sum() / npos
        w = cls[fg].detach().sigmoid().amax(-1)
        wsum = w.sum().clamp(min=1e-6)
        box_loss = (ciou_loss(pb, tb) * w).sum() / wsum
        p, s = points[ai], strides[ai, None]
        ltrb = torch.cat((p - tb[:, :2], tb[:, 2:] - p), -1) / s
        ltrb = ltrb.clamp(0, self.reg_max - 0.01)
        dfl = distribution_focal_loss(reg[fg].reshape(-1, self.reg_max + 1), ltrb.reshape(-1))
        dfl_loss = (dfl.reshape(-1, 4).mean(-1) * w).sum() / wsum
        return {"cls": cls_loss, "box": box_loss, "dfl": dfl_loss}
