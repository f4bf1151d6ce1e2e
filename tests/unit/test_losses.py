"""Loss sanity: ~zero at a perfect prediction, grows with error, finite gradients."""

from __future__ import annotations

import torch

from models.detectors import build_detector
from models.losses import AdaptiveLossWeights, DetectionLoss, ciou_loss, quality_focal_loss

torch.set_num_threads(1)  # small tensors: extra threads only add sync cost on a busy CPU


def test_ciou_perfect_and_growing() -> None:
    gt = torch.tensor([[10.0, 10.0, 50.0, 40.0]])
    assert float(ciou_loss(gt, gt)) < 1e-5
    prev = 0.0
    for d in (2.0, 5.0, 10.0, 20.0):
        v = float(ciou_loss(gt + torch.tensor([d, d, d, d]), gt))
        assert v > prev
        prev = v
    # aspect ratio term: same IoU-ish box with different shape costs more than 0
    assert float(ciou_loss(torch.tensor([[10.0, 10.0, 40.0, 50.0]]), gt)) > 0.1


def test_ciou_gradients_finite_for_degenerate_boxes() -> None:
    p = torch.tensor([[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 1e-6, 1e-6]], requires_grad=True)
    gt = torch.tensor([[10.0, 10.0, 50.0, 40.0], [0.0, 0.0, 1.0, 1.0]])
    ciou_loss(p, gt).sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()


def test_qfocal() -> None:
    y = torch.tensor([0.0, 1.0, 0.7])
    logits = torch.logit(y.clamp(1e-4, 1 - 1e-4))
    assert float(quality_focal_loss(logits, y).sum()) < 1e-3
    worse = quality_focal_loss(torch.tensor([3.0, -3.0, -1.0]), y)
    assert (worse > 0.1).all()
    x = torch.zeros(3, requires_grad=True)
    quality_focal_loss(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _perfect_logits(outs: list[torch.Tensor], targets: torch.Tensor) -> None:
    """Set the anchor-free head's raw outputs so that the cell under each GT centre
    predicts that GT exactly, with confident class/objectness, and everything else is
    confidently background."""
    strides = (8, 16, 32)
    for o, s in zip(outs, strides, strict=True):
        o[..., :4] = 0.0
        o[..., 4:] = -12.0
        for b, _c, x1, y1, x2, y2 in targets.tolist():
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            gx, gy = int(cx // s), int(cy // s)
            o[int(b), 0, gy, gx, 0] = cx / s - gx
            o[int(b), 0, gy, gx, 1] = cy / s - gy
            o[int(b), 0, gy, gx, 2] = torch.log(torch.tensor(w / s))
            o[int(b), 0, gy, gx, 3] = torch.log(torch.tensor(h / s))


def test_detection_loss_sanity() -> None:
    torch.manual_seed(0)
    m = build_detector("tiny", 3)
    crit = DetectionLoss(m.strides, 3)
    x = torch.rand(2, 3, 128, 128)
    targets = torch.tensor([[0, 1, 20.0, 30.0, 60.0, 80.0], [1, 2, 40.0, 40.0, 100.0, 90.0]])
    loss, _parts = crit(m(x), targets)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # perfect boxes → the box term is ~0 and grows with a shifted prediction
    outs = [o.detach().clone() for o in m(x)]
    _perfect_logits(outs, targets)
    _, p0 = crit(outs, targets)
    assert float(p0["box"]) < 0.05
    shifted = [o.clone() for o in outs]
    for o in shifted:
        o[..., 0] += 1.5
    _, p1 = crit(shifted, targets)
    assert float(p1["box"]) > float(p0["box"]) + 0.1


def test_no_targets_is_finite() -> None:
    m = build_detector("tiny", 2)
    crit = DetectionLoss(m.strides, 2)
    loss, _ = crit(m(torch.rand(2, 3, 64, 64)), torch.zeros(0, 6))
    loss.backward()
    assert torch.isfinite(loss)


def test_adaptive_weights_eq18() -> None:
    aw = AdaptiveLossWeights(["box", "obj", "cls"])
    assert aw.update({"box": 1.0, "obj": 0.5, "cls": 2.0}) == {"box": 1.0, "obj": 1.0, "cls": 1.0}
    w = aw.update({"box": 0.9, "obj": 0.1, "cls": 0.6})  # box progressed least
    assert w["box"] > w["cls"] > w["obj"]
    assert abs(sum(w.values()) / 3 - 1.0) < 0.2
    aw2 = AdaptiveLossWeights(["box", "obj", "cls"])
    aw2.load_state_dict(aw.state_dict())
    assert aw2.weights == aw.weights
