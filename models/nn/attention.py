"""Dual attention module of block-N and the classification head (paper eq. 2-4).

``M_c(F) = sigmoid(BN(Conv(MLP(Conv(F)))))``   channel attention, shape [B, C, 1, 1]
``M_s(F) = sigmoid(BN(Conv(Conv(F))))``        spatial attention (BAM-style, two dilated
                                              3x3 convs, d=4), shape [B, 1, H, W]
``F' = (M_c(F) + M_s(F)) * F``

The two maps pass through identity "tap" submodules (``channel_tap``, ``spatial_tap``)
so a distiller can read them with ordinary forward hooks, without the module keeping
tensors around or changing its return type.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Channel branch: 1x1 conv -> global pool -> MLP (C/r, ReLU, C) -> 1x1 conv -> BN."""

    def __init__(self, c: int, r: int = 16) -> None:
        super().__init__()
        hidden = max(c // r, 4)
        self.pre = nn.Conv2d(c, c, 1, bias=False)
        self.mlp = nn.Sequential(
            nn.Conv2d(c, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, c, 1)
        )
        self.post = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pre(x).mean(dim=(2, 3), keepdim=True)
        return self.bn(self.post(self.mlp(y)))


class SpatialAttention(nn.Module):
    """Spatial branch: 1x1 reduce (C/r) -> two dilated 3x3 convs (d) -> 1x1 to one map -> BN."""

    def __init__(self, c: int, r: int = 16, d: int = 4) -> None:
        super().__init__()
        hidden = max(c // r, 4)
        self.body = nn.Sequential(
            nn.Conv2d(c, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1, bias=False),
        )
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.body(x))


class DualAttention(nn.Module):
    """``F' = (M_c(F) + M_s(F)) * F`` with hook-friendly taps on both maps.

    Register forward hooks on ``channel_tap`` / ``spatial_tap`` to read the
    post-sigmoid maps (``[B, C, 1, 1]`` and ``[B, 1, H, W]``).
    """

    def __init__(self, c: int, r: int = 16, d: int = 4) -> None:
        super().__init__()
        self.channel = ChannelAttention(c, r)
        self.spatial = SpatialAttention(c, r, d)
        self.channel_tap = nn.Identity()
        self.spatial_tap = nn.Identity()

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(M_c, M_s)`` for input ``x`` (post-sigmoid)."""
        mc = self.channel_tap(torch.sigmoid(self.channel(x)))
        ms = self.spatial_tap(torch.sigmoid(self.spatial(x)))
        return mc, ms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mc, ms = self.maps(x)
        return (mc + ms) * x
