"""GFL heads of LIDD-Net (NanoDet-Plus style) and their conversion to the served contract.

Main head, per level: ``head_convs`` x (5x5 depthwise + 1x1 conv), then one 1x1 conv to
``C`` class logits (the joint class-quality score of GFL) and ``4·(R+1)`` distribution
logits of the left/top/right/bottom distances in stride units (DFL, ``R = reg_max``).
Raw per-level outputs are ``[B, H, W, C + 4(R+1)]``.

:func:`to_contract` puts the DFL integral inside the graph and re-expresses each row in
the anchor-free contract of docs/contracts.md, about the cell centre ``(g + 0.5)·s``:
``tx = 0.5 + (r - l)/2``, ``tw = log(l + r)`` (likewise y/h), a constant ``obj`` logit
whose sigmoid is 1 in float32, and the class logits, so the one shared post-processing
decodes it unchanged.

The auxiliary head (training only, dropped at export) reads detached neck features: in
``agm`` mode the level's own (NanoDet-Plus's assign-guidance module), in ``latm`` mode
the level fused with its up/down-sampled neighbours (LIDD-Net's ATH).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.nn.conv import Conv

OBJ_LOGIT = 20.0  # sigmoid(20) rounds to 1.0 in float32: score = sigmoid(cls)


def _init_pred(conv: nn.Conv2d, nc: int, prior_prob: float = 0.01) -> None:
    nn.init.normal_(conv.weight, std=0.01)
    assert conv.bias is not None
    nn.init.zeros_(conv.bias)
    nn.init.constant_(conv.bias[:nc], -math.log((1 - prior_prob) / prior_prob))


class GFLHead(nn.Module):
    """Per-level depthwise-separable towers and a shared-cls/reg prediction conv."""

    def __init__(
        self, c: int, nc: int, reg_max: int = 7, convs: int = 2, k: int = 5, levels: int = 3
    ) -> None:
        super().__init__()
        self.nc, self.reg_max = nc, reg_max
        self.towers = nn.ModuleList(
            nn.Sequential(*(m for _ in range(convs) for m in (Conv(c, c, k, g=c), Conv(c, c, 1))))
            for _ in range(levels)
        )
        self.preds = nn.ModuleList(nn.Conv2d(c, nc + 4 * (reg_max + 1), 1) for _ in range(levels))
        for p in self.preds:
            _init_pred(p, nc)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        return [
            p(t(x)).permute(0, 2, 3, 1).contiguous()
            for x, t, p in zip(feats, self.towers, self.preds, strict=True)
        ]


class AuxHead(nn.Module):
    """Training-only head on detached neck features (``agm``: own level; ``latm``:
    the level plus its resized neighbours), 3x3 conv towers, same output layout."""

    def __init__(
        self, c: int, nc: int, reg_max: int, width: int, fuse_levels: bool, levels: int = 3
    ) -> None:
        super().__init__()
        self.fuse_levels = fuse_levels
        self.towers = nn.ModuleList(
            nn.Sequential(Conv(c, width, 3), Conv(width, width, 3)) for _ in range(levels)
        )
        self.preds = nn.ModuleList(
            nn.Conv2d(width, nc + 4 * (reg_max + 1), 1) for _ in range(levels)
        )
        for p in self.preds:
            _init_pred(p, nc)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        fs = [f.detach() for f in feats]
        if self.fuse_levels:
            fused = []
            for i, f in enumerate(fs):
                size = (int(f.shape[2]), int(f.shape[3]))
                g = f
                for j in (i - 1, i + 1):
                    if 0 <= j < len(fs):
                        g = g + F.interpolate(
                            fs[j], size=size, mode="bilinear", align_corners=False
                        )
                fused.append(g)
            fs = fused
        return [
            p(t(x)).permute(0, 2, 3, 1).contiguous()
            for x, t, p in zip(fs, self.towers, self.preds, strict=True)
        ]


def dfl_integral(reg: torch.Tensor, reg_max: int) -> torch.Tensor:
    """``[..., 4(R+1)]`` distribution logits → ``[..., 4]`` expected distances (stride units)."""
    shape = reg.shape[:-1]
    prob = reg.reshape(*shape, 4, reg_max + 1).softmax(-1)
    proj = torch.arange(reg_max + 1, dtype=prob.dtype, device=prob.device)
    return (prob * proj).sum(-1)


def to_contract(raw: torch.Tensor, nc: int, reg_max: int) -> torch.Tensor:
    """One level ``[B, H, W, C + 4(R+1)]`` → contract ``[B, 1, H, W, 5 + C]`` (see module doc)."""
    h, w = int(raw.shape[1]), int(raw.shape[2])
    d = dfl_integral(raw[..., nc:], reg_max)
    lft, top, rgt, bot = d.unbind(-1)
    txy = torch.stack((0.5 + (rgt - lft) / 2, 0.5 + (bot - top) / 2), -1)
    twh = torch.log(torch.stack((lft + rgt, top + bot), -1).clamp(min=1e-4))
    cls = raw[..., :nc]
    obj = cls[..., :1] * 0.0 + OBJ_LOGIT
    return torch.cat((txy, twh, obj, cls), -1).reshape(-1, 1, h, w, 5 + nc)
