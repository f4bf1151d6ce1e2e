"""LIDD-Net backbones and neck: CISB-Net (CSE-A/B + MSFFM), the ShuffleNetV2 baseline
backbone, and the (Rep)GhostPAN neck. Backbones return features at strides 8, 16, 32."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.nn.conv import Conv
from models.nn.cse import CSEA, CSEB
from models.nn.msffm import MSFFM
from models.nn.repghost import RepGhostBlock
from models.nn.shufflev2 import ShuffleV2Block

Feats = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class CISBNet(nn.Module):
    """B1 = 3x3 conv (s2) + max-pool (s2); B2/B3/B4 = CSE-A + ``depths[i]`` CSE-B (B4 ends
    with MSFFM), each halving the resolution; channels ``widths = (B1, B2, B3, B4)``."""

    def __init__(
        self, widths: tuple[int, ...], depths: tuple[int, ...], msffm: bool = True
    ) -> None:
        super().__init__()
        c0, c1, c2, c3 = widths
        self.b1 = nn.Sequential(Conv(3, c0, 3, 2), nn.MaxPool2d(3, 2, 1))
        self.b2 = nn.Sequential(CSEA(c0, c1), *(CSEB(c1) for _ in range(depths[0])))
        self.b3 = nn.Sequential(CSEA(c1, c2), *(CSEB(c2) for _ in range(depths[1])))
        tail: list[nn.Module] = [MSFFM(c3)] if msffm else []
        self.b4 = nn.Sequential(CSEA(c2, c3), *(CSEB(c3) for _ in range(depths[2])), *tail)
        self.out_channels = (c1, c2, c3)

    def forward(self, x: torch.Tensor) -> Feats:
        p3 = self.b2(self.b1(x))
        p4 = self.b3(p3)
        return p3, p4, self.b4(p4)


class ShuffleNetV2(nn.Module):
    """The NanoDet-Plus-like baseline: ShuffleNetV2 stem + three stages (no conv5)."""

    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...]) -> None:
        super().__init__()
        c0, *cs = widths
        self.stem = nn.Sequential(Conv(3, c0, 3, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], c0
        for c, d in zip(cs, depths, strict=True):
            stages.append(
                nn.Sequential(ShuffleV2Block(cin, c, 2), *(ShuffleV2Block(c, c) for _ in range(d)))
            )
            cin = c
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(cs)

    def forward(self, x: torch.Tensor) -> Feats:
        x = self.stem(x)
        outs = []
        for s in self.stages:
            x = s(x)
            outs.append(x)
        return outs[0], outs[1], outs[2]


class GhostPAN(nn.Module):
    """1x1 lateral convs to ``width``, top-down then bottom-up fusion (concat + a Ghost
    block ``2·width → width``); ``rep=True`` makes the blocks RepGhostBlocks (RepGhostPAN),
    ``rep=False`` plain Ghost blocks (the baseline's GhostPAN). Down-sampling by 5x5 dw s2."""

    def __init__(self, in_channels: tuple[int, ...], width: int, rep: bool = True) -> None:
        super().__init__()
        self.lat = nn.ModuleList(Conv(c, width, 1) for c in in_channels)
        self.td = nn.ModuleList(RepGhostBlock(2 * width, width, rep) for _ in range(2))
        self.down = nn.ModuleList(
            nn.Sequential(Conv(width, width, 5, 2, g=width), Conv(width, width, 1))
            for _ in range(2)
        )
        self.bu = nn.ModuleList(RepGhostBlock(2 * width, width, rep) for _ in range(2))
        self.out_channels = (width,) * 3

    def forward(self, feats: Feats) -> Feats:
        p3, p4, p5 = (lat(f) for lat, f in zip(self.lat, feats, strict=True))
        t4 = self.td[0](torch.cat((_up(p5, p4), p4), 1))
        o3 = self.td[1](torch.cat((_up(t4, p3), p3), 1))
        o4 = self.bu[0](torch.cat((self.down[0](o3), t4), 1))
        o5 = self.bu[1](torch.cat((self.down[1](o4), p5), 1))
        return o3, o4, o5


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling of ``x`` to ``like``'s spatial size (static sizes in ONNX)."""
    return F.interpolate(x, size=(int(like.shape[2]), int(like.shape[3])), mode="nearest")
