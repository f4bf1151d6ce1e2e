"""LIDD-Net building blocks: forward shapes, and deploy-time equivalence of every
re-parameterised part (DO-Conv, RepGhost branches, conv+BN) on random input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from models.detectors import build_detector, count_params
from models.detectors.gfl_head import dfl_integral, to_contract
from models.detectors.lidd import LIDD_VARIANTS, LIDDNet, build_lidd
from models.detectors.lidd_parts import CISBNet, GhostPAN
from models.nn.conv import Conv
from models.nn.cse import CSEA, CSEB, channel_shuffle
from models.nn.doconv import DOConv2d, DOConvBN
from models.nn.msffm import MSFFM
from models.nn.reparam import deploy
from models.nn.repghost import RepDW, RepGhostBlock
from models.nn.simam import SimAM
from models.processing import ModelSpec
from models.processing.decode import decode_boxes

torch.set_num_threads(1)
TOL = 1e-4


def randomise(m: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics/affines and DO-Conv ``D`` (identity/zero at init would
    make a folding bug invisible)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.2)
            if isinstance(mod, DOConv2d) and mod.D is not None:
                mod.D.copy_(torch.randn(mod.D.shape, generator=g) * 0.3)
    return m.eval()


def max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        ya, yb = a(x), b(x)
    if isinstance(ya, torch.Tensor):
        ya, yb = [ya], [yb]
    return max(float((p - q).abs().max()) for p, q in zip(ya, yb, strict=True))


def test_simam_formula_and_no_params() -> None:
    x = torch.randn(2, 4, 5, 6)
    y = SimAM()(x)
    mu = x.mean((2, 3), keepdim=True)
    var = ((x - mu) ** 2).sum((2, 3), keepdim=True) / (5 * 6 - 1)
    ref = x * torch.sigmoid((x - mu) ** 2 / (4 * (var + 1e-4)) + 0.5)
    assert torch.allclose(y, ref, atol=1e-6) and count_params(SimAM()) == 0


@pytest.mark.parametrize(("k", "s", "g"), [(3, 1, 1), (3, 2, 2), (1, 1, 1)])
def test_doconv_folds_to_one_conv(k: int, s: int, g: int) -> None:
    m = randomise(DOConvBN(8, 12, k, s, g))
    x = torch.randn(2, 8, 15, 15)
    folded = deploy(m)
    assert isinstance(folded.conv, nn.Conv2d) and isinstance(folded.bn, nn.Identity)
    assert folded(x).shape == (2, 12, 15 // s + (15 % s), 15 // s + (15 % s))
    assert max_diff(m, folded, x) < TOL
    # identity-initialised D: the composed kernel starts as the plain kernel
    fresh = DOConv2d(4, 4, 3)
    assert torch.allclose(fresh.kernel(), fresh.weight.view(4, 4, 3, 3))


def test_conv_bn_fold() -> None:
    m = randomise(nn.Sequential(Conv(6, 10, 3, 2), Conv(10, 10, 3, g=10, act=False)))
    folded = deploy(m)
    assert all(isinstance(c.bn, nn.Identity) for c in folded.modules() if isinstance(c, Conv))
    assert max_diff(m, folded, torch.randn(2, 6, 17, 17)) < TOL


def test_repghost_reparameterises_to_one_dw_conv() -> None:
    dw = randomise(RepDW(8))
    assert len(dw.b1) == 4 and len(dw.b3) == 4 and dw.identity is not None
    x = torch.randn(2, 8, 9, 9)
    folded = deploy(dw)
    assert isinstance(folded.fused, nn.Conv2d) and folded.fused.kernel_size == (3, 3)
    assert count_params(folded) == 8 * 9 + 8  # one 3x3 depthwise kernel + bias
    assert max_diff(dw, folded, x) < TOL
    blk = randomise(RepGhostBlock(16, 8), 1)
    x = torch.randn(2, 16, 12, 12)
    assert blk(x).shape == (2, 8, 12, 12)
    assert max_diff(blk, deploy(blk), x) < TOL


def test_cse_msffm_shapes() -> None:
    x = torch.randn(2, 32, 12, 12)
    assert CSEB(32)(x).shape == x.shape
    assert CSEA(32, 64)(x).shape == (2, 64, 6, 6)
    assert CSEB(40)(torch.randn(1, 40, 5, 5)).shape == (1, 40, 5, 5)  # uneven 6:5:5 split
    for hw in (6, 7):  # odd sizes: the avg-pool funnel is upsampled back to the input size
        m = MSFFM(64)
        assert m(torch.randn(2, 64, hw, hw)).shape == (2, 64, hw, hw)
    # MSFFM's three dilated branches share one kernel
    assert sum(p.numel() for n, p in MSFFM(64).named_parameters() if n == "weight") == 64 * 9
    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    assert channel_shuffle(x).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_cisb_and_pan_shapes() -> None:
    net = CISBNet((8, 16, 32, 64), (1, 1, 1))
    feats = net(torch.randn(2, 3, 96, 96))
    assert [tuple(f.shape) for f in feats] == [(2, 16, 12, 12), (2, 32, 6, 6), (2, 64, 3, 3)]
    assert len(net.b2) == 2 and len(net.b3) == 2 and isinstance(net.b4[-1], MSFFM)
    full = LIDD_VARIANTS["lidd-net"]
    assert full.depths == (3, 7, 3) and full.widths[1:] == (40, 80, 160)  # channels double
    outs = GhostPAN(net.out_channels, 16)(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 12, 12), (2, 16, 6, 6), (2, 16, 3, 3)]


def test_whole_detector_deploys_equivalently() -> None:
    m = randomise(build_lidd("lidd-tiny", 3), 2)
    d = m.deploy()
    assert d.aux is None and m.aux is not None
    assert not any(isinstance(x, (DOConv2d, nn.BatchNorm2d)) for x in d.modules())
    assert max_diff(m, d, torch.randn(2, 3, 64, 64)) < TOL


def test_latm_is_dropped_at_export() -> None:
    """The exported parameter count is the same with and without the auxiliary head."""
    base = LIDD_VARIANTS["lidd-tiny"]
    models = [LIDDNet(replace(base, guidance=g), 6) for g in ("none", "agm", "latm")]
    assert count_params(models[0]) < count_params(models[2])  # LATM trains extra weights
    deployed = {count_params(m.deploy()) for m in models}
    assert len(deployed) == 1
    m = models[2].train()
    assert len(m(torch.randn(2, 3, 64, 64))) == 6  # main + auxiliary levels in training
    assert len(m.eval()(torch.randn(2, 3, 64, 64))) == 3


def test_builder_and_contract_output() -> None:
    m = build_detector("lidd-tiny", 4)
    assert isinstance(m, LIDDNet) and m.build_args()["cfg"]["family"] == "lidd"
    again = build_detector(m.build_args()["cfg"], 4)
    assert isinstance(again, LIDDNet) and again.cfg == m.cfg
    outs = m.eval()(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 1, 8, 8, 9), (1, 1, 4, 4, 9), (1, 1, 2, 2, 9)]


def test_to_contract_decodes_to_the_dfl_boxes() -> None:
    """The shared anchor-free decoding of the contract rows gives the GFL box
    ``centre ± distances`` (the DFL integral happens inside the graph)."""
    torch.manual_seed(0)
    nc, r, s, n = 2, 7, 8, 4
    raw = torch.randn(1, n, n, nc + 4 * (r + 1)) * 3
    rows = to_contract(raw, nc, r).reshape(-1, 5 + nc).numpy()
    spec = ModelSpec(class_names=("a", "b"), imgsz=n * s, strides=(s,), head="anchor_free")
    got = decode_boxes(rows, spec)
    d = dfl_integral(raw[0, ..., nc:], r).reshape(-1, 4).numpy() * s
    ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = (np.stack([xs.ravel(), ys.ravel()], 1) + 0.5) * s
    want = np.concatenate([c - d[:, :2], c + d[:, 2:]], 1)
    assert np.abs(got - want).max() < 1e-3
    assert np.all(1 / (1 + np.exp(-rows[:, 4])) == 1.0)  # score = sigmoid(cls)
