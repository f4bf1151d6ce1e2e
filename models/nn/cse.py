"""CSE blocks of CISB-Net (channel separation enhancement, LIDD-Net fig. 3).

CSE-B (stride 1, ``C`` channels): the input is split 6:5:5 into ``x1, x2, x3``. ``x2``
goes through a 1x1 conv and a 3x3 depthwise conv into ``y``, which is chunked 1:1 into
``y4, y5``. The enhanced group ``e = DO-Conv(SimAM(cat(y5, x3)))`` is added to ``y``;
``cat(x1, y, y + e)`` is channel-shuffled (groups 2). ``x1`` passes unchanged (the
ShuffleNet identity half), so every block keeps a direct gradient path.
The paper's figure is missing from the text; this is the reading of its prose used here.

CSE-A raises the channels (and halves the resolution) with a stride-2 grouped DO-Conv,
then applies a CSE-B.
"""

from __future__ import annotations

import torch
from torch import nn

from models.nn.conv import Conv
from models.nn.doconv import DOConvBN
from models.nn.simam import SimAM


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """ShuffleNet channel shuffle (static channel and spatial sizes, dynamic batch)."""
    c, h, w = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    return x.reshape(-1, groups, c // groups, h, w).transpose(1, 2).reshape(-1, c, h, w)


def split_sizes(c: int) -> tuple[int, int, int]:
    """The 6:5:5 split of ``c`` channels (``c1`` takes the rounding remainder)."""
    c2 = round(c * 5 / 16)
    return c - 2 * c2, c2, c2


class CSEB(nn.Module):
    """CSE-B: split 6:5:5, 1x1 + 3x3 dw, chunk 1:1, SimAM + DO-Conv, add, concat, shuffle."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.splits = split_sizes(c)
        _, c2, c3 = self.splits
        if c2 < 2 or c % 2:
            raise ValueError(f"CSE-B needs an even channel count >= 8, got {c}")
        self.mid = c2 // 2
        self.pw = Conv(c2, c2, 1)
        self.dw = Conv(c2, c2, 3, g=c2, act=False)
        self.simam = SimAM()
        self.enhance = DOConvBN(c2 - self.mid + c3, c2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2, x3 = x.split(self.splits, 1)
        y = self.dw(self.pw(x2))
        e = self.enhance(self.simam(torch.cat((y[:, self.mid :], x3), 1)))
        return channel_shuffle(torch.cat((x1, y, y + e), 1))


class CSEA(nn.Module):
    """CSE-A: channel expansion ``c1 → c2`` by a stride-``s`` 3x3 DO-Conv (``g`` groups;
    the CSE-B's shuffle mixes them), then a CSE-B."""

    def __init__(self, c1: int, c2: int, s: int = 2, g: int = 2) -> None:
        super().__init__()
        self.expand = DOConvBN(c1, c2, 3, s, g)
        self.body = CSEB(c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.expand(x))
