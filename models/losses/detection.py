"""Detection loss: QFocal (beta=2) for objectness/quality and classes, CIoU for boxes,
with task-aligned (anchor-free) or YOLOv5 (anchor-based) assignment."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from models.assign import AnchorAssigner, TaskAlignedAssigner
from models.detectors.decode import decode_boxes, flatten_outputs, make_grid
from models.losses.iou import ciou_loss
from models.losses.qfocal import quality_focal_loss

LOSS_NAMES = ("box", "obj", "cls")
DEFAULT_GAINS = {"box": 5.0, "obj": 1.0, "cls": 1.0}


def pad_targets(
    targets: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[M,6]`` collate targets → ``labels [B,K]``, ``boxes [B,K,4]``, ``mask [B,K]``."""
    dev = targets.device
    bi = targets[:, 0].long()
    counts = (
        torch.bincount(bi, minlength=batch)
        if targets.numel()
        else torch.zeros(batch, dtype=torch.long)
    )
    k = int(counts.max()) if counts.numel() else 0
    labels = torch.zeros(batch, k, dtype=torch.long, device=dev)
    boxes = torch.zeros(batch, k, 4, device=dev)
    mask = torch.zeros(batch, k, dtype=torch.bool, device=dev)
    if k:
        order = torch.argsort(bi, stable=True)
        bi_s = bi[order]
        starts = torch.cumsum(counts.to(dev), 0) - counts.to(dev)
        slot = torch.arange(bi_s.numel(), device=dev) - starts[bi_s]
        labels[bi_s, slot] = targets[order, 1].long()
        boxes[bi_s, slot] = targets[order, 2:6].float()
        mask[bi_s, slot] = True
    return labels, boxes, mask


class DetectionLoss:
    """Computes the weighted loss and its unweighted parts from raw per-level outputs."""

    def __init__(
        self,
        strides: Sequence[int],
        num_classes: int,
        head: str = "anchor_free",
        anchors: Sequence[Sequence[Sequence[float]]] | None = None,
        gains: dict[str, float] | None = None,
        assigner: TaskAlignedAssigner | None = None,
    ) -> None:
        self.strides, self.nc, self.head, self.anchors = tuple(strides), num_classes, head, anchors
        self.gains = dict(DEFAULT_GAINS, **(gains or {}))
        self.tal = assigner or TaskAlignedAssigner()
        self.anchor_assigner = AnchorAssigner()

    def __call__(
        self,
        outs: Sequence[torch.Tensor],
        targets: torch.Tensor,
        weights: dict[str, float] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(total, parts)``; ``parts`` are unweighted, detached scalars."""
        if self.head == "anchor_free":
            parts = self._anchor_free(outs, targets)
        else:
            parts = self._anchor_based(outs, targets)
        w = weights or {}
        total = sum(self.gains[k] * w.get(k, 1.0) * parts[k] for k in LOSS_NAMES)
        assert isinstance(total, torch.Tensor)
        return total, {k: v.detach() for k, v in parts.items()}

    def _anchor_free(
        self, outs: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        raw = flatten_outputs(outs).float()
        b = raw.shape[0]
        cells, strides, _ = make_grid(outs, self.strides)
        boxes = decode_boxes(raw, cells, strides, "anchor_free")
        obj, cls = raw[..., 4], raw[..., 5:]
        scores = (obj.sigmoid()[..., None] * cls.sigmoid()).detach()
        labels, gt_boxes, mask = pad_targets(targets, b)
        asg = self.tal(
            scores,
            boxes.detach(),
            (cells + 0.5) * strides[:, None],
            strides,
            labels,
            gt_boxes,
            mask,
        )
        norm = asg.quality.sum().clamp(min=1.0)
        obj_loss = quality_focal_loss(obj, asg.quality).sum() / norm
        fg = asg.fg
        nfg = max(int(fg.sum()), 1)
        if fg.any():
            onehot = F.one_hot(asg.labels[fg], self.nc).float()
            cls_loss = quality_focal_loss(cls[fg], onehot).sum() / nfg
            q = asg.quality[fg]
            box_loss = (ciou_loss(boxes[fg], asg.boxes[fg]) * q).sum() / q.sum().clamp(min=1e-6)
        else:
            cls_loss = cls.sum() * 0.0
            box_loss = raw[..., :4].sum() * 0.0
        return {"box": box_loss, "obj": obj_loss, "cls": cls_loss}

    def _anchor_based(
        self, outs: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        assert self.anchors is not None
        dev = outs[0].device
        anchors = torch.tensor(self.anchors, device=dev, dtype=torch.float32)
        grids = [(o.shape[2], o.shape[3]) for o in outs]
        matches = self.anchor_assigner(targets.float(), anchors, self.strides, grids)
        box_l, cls_l, obj_l = [], [], []
        npos, tsum = 0, torch.zeros((), device=dev)
        for lvl, (o, mt) in enumerate(zip(outs, matches, strict=True)):
            o = o.float()
            tobj = torch.zeros(o.shape[:4], device=dev)
            if mt.b.numel():
                p = o[mt.b, mt.a, mt.gy, mt.gx]
                cells = torch.stack((mt.gx, mt.gy), 1).float()
                s = torch.full((p.shape[0],), float(self.strides[lvl]), device=dev)
                pb = decode_boxes(p, cells, s, "anchor_based", anchors[lvl][mt.a])
                lb = ciou_loss(pb, mt.boxes)
                box_l.append(lb.sum())
                cls_l.append(
                    quality_focal_loss(p[:, 5:], F.one_hot(mt.labels, self.nc).float()).sum()
                )
                tobj[mt.b, mt.a, mt.gy, mt.gx] = (1.0 - lb.detach()).clamp(0, 1)
                npos += p.shape[0]
            tsum = tsum + tobj.sum()
            obj_l.append(quality_focal_loss(o[..., 4], tobj).sum())
        n = max(npos, 1)
        zero = outs[0].sum() * 0.0
        return {
            "box": (sum(box_l) / n) if box_l else zero,
            "obj": sum(obj_l) / tsum.clamp(min=1.0),
            "cls": (sum(cls_l) / n) if cls_l else zero,
        }
