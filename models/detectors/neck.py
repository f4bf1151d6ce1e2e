"""PAN neck (top-down + bottom-up) built from Block-N (C3 + dual attention)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.nn.attention import DualAttention
from models.nn.conv import C3, Conv


class BlockN(nn.Module):
    """Block-N: C3 fusion + dual attention; the order is reversed between the top-down
    path (attention first) and the bottom-up path (C3 first), as in the paper's fig. 5."""

    def __init__(self, c1: int, c2: int, n: int = 1, attn_first: bool = False) -> None:
        super().__init__()
        self.attn_first = attn_first
        self.attn = DualAttention(c1 if attn_first else c2)
        self.c3 = C3(c1, c2, n, shortcut=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c3(self.attn(x)) if self.attn_first else self.attn(self.c3(x))


class PANNeck(nn.Module):
    """YOLOv5-style PAN over (P3, P4, P5); outputs have channels ``out_channels``."""

    def __init__(self, in_channels: tuple[int, int, int], n: int = 1) -> None:
        super().__init__()
        c3, c4, c5 = in_channels
        self.lat5 = Conv(c5, c4, 1)
        self.td4 = BlockN(c4 * 2, c4, n, attn_first=True)
        self.lat4 = Conv(c4, c3, 1)
        self.td3 = BlockN(c3 * 2, c3, n, attn_first=True)
        self.down3 = Conv(c3, c3, 3, 2)
        self.bu4 = BlockN(c3 * 2, c4, n)
        self.down4 = Conv(c4, c4, 3, 2)
        self.bu5 = BlockN(c4 * 2, c5, n)
        self.out_channels = (c3, c4, c5)

    def forward(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3, p4, p5 = feats
        l5 = self.lat5(p5)
        t4 = self.td4(torch.cat((F.interpolate(l5, scale_factor=2.0, mode="nearest"), p4), 1))
        l4 = self.lat4(t4)
        o3 = self.td3(torch.cat((F.interpolate(l4, scale_factor=2.0, mode="nearest"), p3), 1))
        o4 = self.bu4(torch.cat((self.down3(o3), l4), 1))
        o5 = self.bu5(torch.cat((self.down4(o4), l5), 1))
        return o3, o4, o5
