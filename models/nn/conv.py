"""Convolutional primitives: Conv-BN-SiLU, bottleneck and YOLOv5 C3 (Block-B)."""

from __future__ import annotations

import torch
from torch import nn


def autopad(k: int, d: int = 1) -> int:
    """Padding that keeps the spatial size for an odd kernel ``k`` with dilation ``d``."""
    return d * (k - 1) // 2


class Conv(nn.Module):
    """Conv2d + BatchNorm + SiLU (the YOLOv5 ``Conv``)."""

    def __init__(
        self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, d: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, d), dilation=d, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 bottleneck with optional residual."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, e: float = 1.0) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """YOLOv5 CSP bottleneck with three convolutions."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, e: float = 0.5) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, 1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class BlockB(nn.Module):
    """Block-B: a strided Conv (down-sampling) followed by a C3, one backbone stage."""

    def __init__(self, c1: int, c2: int, n: int = 1) -> None:
        super().__init__()
        self.down = Conv(c1, c2, 3, 2)
        self.c3 = C3(c2, c2, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c3(self.down(x))
