"""Assigners on toy cases."""

from __future__ import annotations

import torch

from models.assign import AnchorAssigner, TaskAlignedAssigner

torch.set_num_threads(1)  # small tensors: extra threads only add sync cost on a busy CPU


def _grid(n: int, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    pts = (torch.stack((xs.reshape(-1), ys.reshape(-1)), 1).float() + 0.5) * s
    return pts, torch.full((n * n,), float(s))


def test_tal_picks_best_aligned_anchor_inside_gt() -> None:
    pts, strides = _grid(8, 8)  # 64 anchors on a 64x64 image
    a = pts.shape[0]
    gt = torch.tensor([[[16.0, 16.0, 40.0, 40.0]]])
    boxes = torch.zeros(1, a, 4)
    boxes[0] = torch.cat((pts - 4, pts + 4), 1)  # tiny boxes everywhere
    best = 3 * 8 + 3  # anchor centre (28, 28) = GT centre
    boxes[0, best] = gt[0, 0]
    scores = torch.full((1, a, 2), 0.1)
    asg = TaskAlignedAssigner(topk=3)(
        scores, boxes, pts, strides, torch.tensor([[1]]), gt, torch.tensor([[True]])
    )
    assert asg.fg[0, best] and int(asg.fg.sum()) == 3
    assert int(asg.labels[0, best]) == 1
    assert torch.allclose(asg.boxes[0, best], gt[0, 0])
    assert abs(float(asg.quality[0, best]) - 1.0) < 1e-4  # best anchor gets the best IoU
    assert float(asg.quality[~asg.fg].abs().sum()) == 0.0


def test_tal_overlap_goes_to_highest_iou_and_padding_ignored() -> None:
    pts, strides = _grid(8, 8)
    a = pts.shape[0]
    gts = torch.tensor([[[8.0, 8.0, 56.0, 56.0], [20.0, 20.0, 36.0, 36.0], [0, 0, 0, 0]]])
    boxes = torch.cat((pts - 8, pts + 8), 1)[None]
    scores = torch.full((1, a, 3), 0.5)
    mask = torch.tensor([[True, True, False]])
    asg = TaskAlignedAssigner(topk=4)(
        scores, boxes, pts, strides, torch.tensor([[0, 2, 1]]), gts, mask
    )
    centre = 3 * 8 + 3  # (28, 28): its 16x16 predicted box equals the small GT exactly
    assert asg.fg[0, centre] and int(asg.labels[0, centre]) == 2
    assert not (asg.labels[asg.fg] == 1).any()  # the padded GT row never wins


def test_anchor_assigner_ratio_and_neighbours() -> None:
    anchors = torch.tensor([[[10.0, 10.0]], [[40.0, 40.0]]])
    targets = torch.tensor([[0, 3, 98.0, 98.0, 138.0, 138.0]])  # 40x40 at (118, 118)
    out = AnchorAssigner()(targets, anchors, (8, 16), [(32, 32), (16, 16)])
    assert out[0].b.numel() == 0  # 40/10 = 4 is not < 4
    lv = out[1]
    assert lv.b.numel() == 3  # own cell + two neighbours
    assert set(zip(lv.gx.tolist(), lv.gy.tolist(), strict=True)) == {(7, 7), (6, 7), (7, 6)}
    assert (lv.labels == 3).all() and torch.allclose(lv.boxes[0], targets[0, 2:])
