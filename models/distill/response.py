"""Response distillation (pruning-kd paper eq. 12-17) on the raw head outputs.

* Classification (eq. 12-15): ``T^2 * KL(softmax(z_T / T) || softmax(z_S / T))`` over the
  class logits of every anchor, weighted by the teacher's objectness ``sigmoid(obj_T)`` (our
  head scores ``obj * cls``, so class logits where the teacher sees no object carry no
  knowledge), normalised by the sum of those weights. With one class the softmax is
  degenerate and the binary KL of the sigmoid is used instead.
* Objectness: the binary form ``T^2 * KL(sigmoid(o_T / T) || sigmoid(o_S / T))`` summed over
  anchors and normalised by ``sum sigmoid(o_T)`` (the teacher's expected object count).
  KL rather than cross-entropy so that the loss is exactly zero when the student matches.
* Regression (eq. 16-17), teacher-bounded: on the teacher's positive anchors (the detection
  loss's own assigner run on the teacher's predictions) with the assigned GT box ``y``,
  ``e = ||(R - y) / (w_y, h_y, w_y, h_y)||^2`` (L2 relative to the GT size) and the student
  pays ``e_S`` only where ``e_S > e_T + m``. The paper's CIoU/smooth-L1 term of eq. 17 is
  the detection loss itself and is not repeated here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from models.detectors.decode import decode_boxes, flatten_outputs, make_grid
from models.losses import DetectionLoss, pad_targets

RESPONSE_TERMS = ("resp_cls", "resp_obj", "resp_box")


def binary_kl(logit_s: torch.Tensor, logit_t: torch.Tensor) -> torch.Tensor:
    """Element-wise ``KL(Bernoulli(sigmoid(t)) || Bernoulli(sigmoid(s)))`` (≥ 0, 0 iff equal)."""
    p_t = torch.sigmoid(logit_t)
    return p_t * (F.logsigmoid(logit_t) - F.logsigmoid(logit_s)) + (1 - p_t) * (
        F.logsigmoid(-logit_t) - F.logsigmoid(-logit_s)
    )


def soft_class_loss(
    cls_s: torch.Tensor, cls_t: torch.Tensor, weight: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * sum_n w_n KL(P_T || P_S) / sum_n w_n`` for logits ``[N, C]`` and weights ``[N]``."""
    t = temperature
    if cls_s.shape[-1] == 1:
        kl = binary_kl(cls_s[..., 0] / t, cls_t[..., 0] / t)
    else:
        log_pt = F.log_softmax(cls_t / t, -1)
        kl = (log_pt.exp() * (log_pt - F.log_softmax(cls_s / t, -1))).sum(-1)
    return t * t * (kl * weight).sum() / weight.sum().clamp(min=1.0)


def soft_objectness_loss(
    obj_s: torch.Tensor, obj_t: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * sum binary_kl(o_S / T, o_T / T) / max(1, sum sigmoid(o_T))``."""
    t = temperature
    kl = binary_kl(obj_s / t, obj_t / t)
    return t * t * kl.sum() / torch.sigmoid(obj_t).sum().clamp(min=1.0)


def bounded_regression_loss(
    box_s: torch.Tensor, box_t: torch.Tensor, gt: torch.Tensor, margin: float = 0.0
) -> torch.Tensor:
    """Mean over the ``P`` rows of ``e_S * [e_S > e_T + m]`` for xyxy boxes ``[P, 4]``."""
    if gt.shape[0] == 0:
        return box_s.sum() * 0.0
    wh = (gt[:, 2:] - gt[:, :2]).clamp(min=1.0).repeat(1, 2)
    e_s = ((box_s - gt) / wh).pow(2).sum(-1)
    e_t = ((box_t.detach() - gt) / wh).pow(2).sum(-1)
    return (e_s * (e_s > e_t + margin)).sum() / gt.shape[0]


class ResponseDistiller:
    """Soft class/objectness targets and the teacher-bounded box loss. Reuses the student's
    :class:`DetectionLoss` for strides, head kind, anchors and assigners."""

    names = RESPONSE_TERMS

    def __init__(self, criterion: DetectionLoss, temperature: float = 2.0, margin: float = 0.0):
        self.crit, self.temperature, self.margin = criterion, temperature, margin

    def __call__(
        self, outs_s: Sequence[torch.Tensor], outs_t: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``resp_cls``, ``resp_obj``, ``resp_box`` for per-level raw outputs."""
        raw_s = flatten_outputs(outs_s).float()
        raw_t = flatten_outputs(outs_t).float().detach()
        if raw_s.shape != raw_t.shape:
            raise ValueError(f"student output {tuple(raw_s.shape)} != teacher {tuple(raw_t.shape)}")
        t = self.temperature
        c = raw_s.shape[-1] - 5
        obj = soft_objectness_loss(raw_s[..., 4], raw_t[..., 4], t)
        cls = soft_class_loss(
            raw_s[..., 5:].reshape(-1, c),
            raw_t[..., 5:].reshape(-1, c),
            torch.sigmoid(raw_t[..., 4]).reshape(-1),
            t,
        )
        box_s, box_t, gt = self._positives(outs_t, raw_s, raw_t, targets)
        box = bounded_regression_loss(box_s, box_t, gt, self.margin)
        return {"resp_cls": cls, "resp_obj": obj, "resp_box": box}

    def _positives(
        self,
        outs: Sequence[torch.Tensor],
        raw_s: torch.Tensor,
        raw_t: torch.Tensor,
        targets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decoded student/teacher boxes and GT boxes ``[P, 4]`` on the teacher's positives."""
        crit = self.crit
        if crit.head == "anchor_free":
            cells, strides, _ = make_grid(outs, crit.strides)
            bs = decode_boxes(raw_s, cells, strides, "anchor_free")
            bt = decode_boxes(raw_t, cells, strides, "anchor_free")
            scores = torch.sigmoid(raw_t[..., 4:5]) * torch.sigmoid(raw_t[..., 5:])
            labels, gt_boxes, mask = pad_targets(targets, raw_t.shape[0])
            asg = crit.tal(
                scores, bt, (cells + 0.5) * strides[:, None], strides, labels, gt_boxes, mask
            )
            return bs[asg.fg], bt[asg.fg], asg.boxes[asg.fg]
        assert crit.anchors is not None
        anchors = torch.tensor(crit.anchors, device=raw_s.device, dtype=torch.float32)
        cells, strides, anc = make_grid(outs, crit.strides, crit.anchors)
        assert anc is not None
        grids = [(o.shape[2], o.shape[3]) for o in outs]
        matches = crit.anchor_assigner(targets.float(), anchors, crit.strides, grids)
        rows, bidx, gts, offset = [], [], [], 0
        for o, mt in zip(outs, matches, strict=True):
            na, h, w = o.shape[1:4]
            rows.append(offset + mt.a * h * w + mt.gy * w + mt.gx)
            bidx.append(mt.b)
            gts.append(mt.boxes.float())
            offset += na * h * w
        r, b = torch.cat(rows), torch.cat(bidx)
        bs = decode_boxes(raw_s[b, r], cells[r], strides[r], "anchor_based", anc[r])
        bt = decode_boxes(raw_t[b, r], cells[r], strides[r], "anchor_based", anc[r])
        return bs, bt, torch.cat(gts)
