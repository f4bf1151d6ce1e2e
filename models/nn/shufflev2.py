"""ShuffleNetV2 units (Ma et al., 2018): the baseline (NanoDet-Plus-like) backbone's blocks."""

from __future__ import annotations

import torch
from torch import nn

from models.nn.conv import Conv
from models.nn.cse import channel_shuffle


class ShuffleV2Block(nn.Module):
    """Stride 1: half the channels pass, the other half 1x1 → 3x3 dw → 1x1; concat, shuffle.
    Stride 2: both halves see the input (dw-s2 + 1x1 on the left), channels ``c1 → c2``."""

    def __init__(self, c1: int, c2: int, s: int = 1) -> None:
        super().__init__()
        self.s = s
        mid = c2 // 2
        cin = c1 if s == 2 else c1 // 2
        if s == 1 and c1 != c2:
            raise ValueError("a stride-1 ShuffleNetV2 unit keeps its width")
        self.left = (
            nn.Sequential(Conv(c1, c1, 3, s, g=c1, act=False), Conv(c1, mid, 1)) if s == 2 else None
        )
        self.right = nn.Sequential(
            Conv(cin, mid, 1), Conv(mid, mid, 3, s, g=mid, act=False), Conv(mid, mid, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.left is None:
            a, b = x.chunk(2, 1)
            return channel_shuffle(torch.cat((a, self.right(b)), 1))
        return channel_shuffle(torch.cat((self.left(x), self.right(x)), 1))
