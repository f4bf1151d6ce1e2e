"""The GFL loss pieces of LIDD-Net: DFL, the dynamic soft label assignment, and the
loss on raw LIDD-Net training outputs for each assignment guidance."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from models.assign.dsl import DynamicSoftLabelAssigner
from models.detectors.lidd import LIDD_VARIANTS, LIDDNet
from models.losses.gfl import GFLLoss, distribution_focal_loss, level_points

torch.set_num_threads(1)


def test_dfl_is_lowest_on_the_two_neighbouring_bins() -> None:
    target = torch.tensor([2.3])
    good = torch.log(torch.tensor([[1e-6] * 2 + [0.7, 0.3] + [1e-6] * 4]))
    bad = torch.zeros(1, 8)
    assert distribution_focal_loss(good, target) < distribution_focal_loss(bad, target)
    assert float(distribution_focal_loss(good, target)) == pytest.approx(0.6109, abs=1e-3)


def test_assignment_picks_points_inside_the_box_with_soft_iou() -> None:
    outs = [torch.zeros(1, 8, 8, 1), torch.zeros(1, 4, 4, 1)]
    points, strides = level_points(outs, (8, 16))
    a = points.shape[0]
    gt = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]])
    boxes = torch.cat((points - 12, points + 12), 1)[None]  # 24 px boxes around each point
    scores = torch.full((1, a, 2), 0.1)
    asg = DynamicSoftLabelAssigner()(
        scores, boxes, points, strides, torch.tensor([[1]]), gt, torch.tensor([[True]])
    )
    fg = asg.fg[0]
    assert 1 <= int(fg.sum()) <= 13
    p = points[fg]
    assert bool(((p > 8) & (p < 40)).all())  # only candidates inside the GT
    assert bool((asg.labels[0][fg] == 1).all()) and bool((asg.quality[0][fg] > 0.3).all())
    none = DynamicSoftLabelAssigner()(
        scores,
        boxes,
        points,
        strides,
        torch.zeros(1, 0, dtype=torch.long),
        torch.zeros(1, 0, 4),
        torch.zeros(1, 0, dtype=torch.bool),
    )
    assert not bool(none.fg.any())


@pytest.mark.parametrize("guidance", ["none", "agm", "latm"])
def test_loss_on_training_outputs(guidance: str) -> None:
    torch.manual_seed(0)
    m = LIDDNet(replace(LIDD_VARIANTS["lidd-tiny"], guidance=guidance), 2).train()
    crit = GFLLoss.for_model(m)
    targets = torch.tensor([[0, 1, 10.0, 12.0, 40.0, 50.0], [1, 0, 5.0, 5.0, 60.0, 30.0]])
    total, parts = crit(m(torch.randn(2, 3, 64, 64)), targets)
    assert set(parts) == {"cls", "box", "dfl", "aux"} and torch.isfinite(total)
    assert (float(parts["aux"]) > 0) == (guidance != "none")
    total.backward()
    assert m.head.preds[0].weight.grad is not None
    if m.aux is not None:  # the auxiliary head learns from detached features only
        assert m.aux.preds[0].weight.grad is not None
    empty = crit(m(torch.randn(2, 3, 64, 64)), torch.zeros(0, 6))[0]
    assert torch.isfinite(empty)
