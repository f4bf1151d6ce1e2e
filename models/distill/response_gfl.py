"""Response distillation into a GFL student (LIDD-Net) from a T/S-model teacher.

The GFL head has no objectness: its class logits are the joint class-quality score. The
teacher's counterpart is its per-cell, per-class joint score ``p_T = sigmoid(obj_T) *
sigmoid(cls_T)``. Both heads predict at the same strides on the same grids, one student
point per teacher cell; for an anchor-based teacher a cell's score is the max over its
anchors (per class) and its box that of its best-scoring anchor.

* ``resp_cls`` (pruning-kd eq. 12-15, binary form): ``T^2 * sum binary_kl(z_S / T,
  logit(p_T) / T)`` over every cell and class, normalised by the teacher's expected object
  count ``max(1, sum_cells sigmoid(obj_T))`` — the normalisation of the T/S student's
  soft-objectness term, which this term takes the place of: background cells teach low
  scores, object cells the teacher's class distribution.
* ``resp_box`` (eq. 16-17): :func:`~models.distill.response.bounded_regression_loss` on the
  teacher's positive points, found by the student's own assigner (dynamic soft labels) run
  on the teacher's per-cell scores and boxes; the student's boxes are its DFL integrals
  about the cell centres ``(g + 0.5)·s``.

The student outputs are LIDD-Net's training-mode outputs (main head first; the auxiliary
head's, if any, are ignored).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from models.detectors import Detector
from models.detectors.decode import decode_boxes, make_grid
from models.detectors.gfl_head import dfl_integral
from models.distill.response import binary_kl, bounded_regression_loss
from models.losses import pad_targets
from models.losses.gfl import GFLLoss, level_points

GFL_RESPONSE_TERMS = ("resp_cls", "resp_box")

Anchors = Sequence[Sequence[Sequence[float]]]


def joint_logit(obj: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """``logit(sigmoid(obj) * sigmoid(cls))``, in log space (``obj`` broadcast over classes)."""
    log_p = (F.logsigmoid(obj) + F.logsigmoid(cls)).clamp(max=-1e-8)
    return log_p - torch.log(-torch.expm1(log_p))


def teacher_cells(
    outs: Sequence[torch.Tensor], strides: Sequence[int], head: str, anchors: Anchors | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-cell teacher predictions of raw ``[B, na, H, W, 5+C]`` levels, in the student's
    point order (levels, then y, x): joint logits ``[B, A, C]`` (max over anchors), objectness
    probabilities ``[B, A]`` (max over anchors) and xyxy boxes ``[B, A, 4]`` (best anchor)."""
    logits, objs, boxes = [], [], []
    for lvl, (o, s) in enumerate(zip(outs, strides, strict=True)):
        b, na, h, w, k = (int(v) for v in o.shape)
        anc = None if head == "anchor_free" or anchors is None else [anchors[lvl]]
        cells, strd, anc_rows = make_grid([o], [s], anc)
        raw = o.reshape(b, na * h * w, k).float()
        box = decode_boxes(raw, cells, strd, head, anc_rows).reshape(b, na, h * w, 4)
        raw = raw.reshape(b, na, h * w, k)
        logit = joint_logit(raw[..., 4:5], raw[..., 5:])  # [B,na,HW,C]
        best = logit.amax(-1).argmax(1)  # [B,HW]: the cell's best anchor
        logits.append(logit.amax(1))
        objs.append(torch.sigmoid(raw[..., 4]).amax(1))
        boxes.append(box.gather(1, best[:, None, :, None].expand(b, 1, h * w, 4))[:, 0])
    return torch.cat(logits, 1), torch.cat(objs, 1), torch.cat(boxes, 1)


class GFLResponseDistiller:
    """``resp_cls`` and ``resp_box`` for a GFL student; reuses the student's
    :class:`GFLLoss` for strides, classes, DFL range and assigner."""

    names = GFL_RESPONSE_TERMS

    def __init__(
        self,
        criterion: GFLLoss,
        teacher_head: str = "anchor_free",
        teacher_anchors: Anchors | None = None,
        temperature: float = 2.0,
        margin: float = 0.0,
    ) -> None:
        if teacher_head not in ("anchor_free", "anchor_based"):
            raise ValueError(f"unknown teacher head kind {teacher_head!r}")
        if teacher_head == "anchor_based" and not teacher_anchors:
            raise ValueError("an anchor_based teacher needs its anchors")
        self.crit, self.head, self.anchors = criterion, teacher_head, teacher_anchors
        self.temperature, self.margin = temperature, margin

    @classmethod
    def for_teacher(
        cls, criterion: GFLLoss, teacher: Detector, temperature: float, margin: float
    ) -> GFLResponseDistiller:
        """The distiller for a T/S-model ``teacher`` (its head kind and anchors)."""
        return cls(criterion, teacher.head_kind, teacher.anchors, temperature, margin)

    def _student(
        self, outs: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Class logits ``[B, A, C]``, DFL boxes ``[B, A, 4]``, points ``[A, 2]``, strides."""
        points, strides = level_points(outs, self.crit.strides)
        b, nc = outs[0].shape[0], self.crit.nc
        raw = torch.cat([o.reshape(b, -1, int(o.shape[-1])) for o in outs], 1).float()
        d = dfl_integral(raw[..., nc:], self.crit.reg_max) * strides[:, None]
        boxes = torch.cat((points - d[..., :2], points + d[..., 2:]), -1)
        return raw[..., :nc], boxes, points, strides

    def __call__(
        self, outs_s: Sequence[torch.Tensor], outs_t: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``resp_cls`` and ``resp_box``."""
        n = len(self.crit.strides)
        if len(outs_t) != n:
            raise ValueError(f"teacher has {len(outs_t)} levels, the student {n}")
        for s, o_s, o_t in zip(self.crit.strides, outs_s[:n], outs_t, strict=True):
            if tuple(o_s.shape[1:3]) != tuple(o_t.shape[2:4]):
                raise ValueError(
                    f"stride {s}: student grid {tuple(o_s.shape[1:3])} vs teacher "
                    f"{tuple(o_t.shape[2:4])}"
                )
        cls_s, box_s, points, strides = self._student(outs_s[:n])
        with torch.no_grad():
            logit_t, obj_t, box_t = teacher_cells(
                outs_t, self.crit.strides, self.head, self.anchors
            )
        if logit_t.shape != cls_s.shape:
            raise ValueError(f"student classes {cls_s.shape[-1]} != teacher {logit_t.shape[-1]}")
        t = self.temperature
        kl = binary_kl(cls_s / t, logit_t / t)
        resp_cls = t * t * kl.sum() / obj_t.sum().clamp(min=1.0)
        labels, gt_boxes, mask = pad_targets(targets, cls_s.shape[0])
        asg = self.crit.assigner(
            torch.sigmoid(logit_t), box_t, points, strides, labels, gt_boxes, mask
        )
        fg = asg.fg
        resp_box = bounded_regression_loss(box_s[fg], box_t[fg], asg.boxes[fg], self.margin)
        return {"resp_cls": resp_cls, "resp_box": resp_box}
