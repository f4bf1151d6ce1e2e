"""DO-Conv: a depthwise over-parameterised convolution (Cao et al., 2020).

The conv kernel ``W`` (``[C_out, C_in/g, D_mul]``) is composed with a per-input-channel
depthwise kernel ``D`` (``[C_in/g, k·k, D_mul]``, identity-initialised) into one plain
kernel ``W'[o, i, m] = Σ_s D[i, m, s] · W[o, i, s]``. Training optimises ``W`` and ``D``
(the extra linear factor changes the optimisation, not the function class); at export
``switch_to_deploy`` stores ``W'`` in an ordinary conv. A 1x1 DO-Conv is a plain conv.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.nn.conv import autopad
from models.nn.reparam import fold_bn, fused_conv


class DOConv2d(nn.Module):
    """Over-parameterised conv with ``D_mul = k·k``; bias-free (a BN follows)."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, g: int = 1) -> None:
        super().__init__()
        self.c1, self.c2, self.k, self.s, self.g = c1, c2, k, s, g
        self.p = autopad(k)
        mn = k * k
        self.weight = nn.Parameter(torch.empty(c2, c1 // g, mn))
        nn.init.kaiming_uniform_(self.weight.view(c2, c1 // g, k, k), a=math.sqrt(5))
        self.D: nn.Parameter | None = None
        if mn > 1:
            self.D = nn.Parameter(torch.zeros(c1 // g, mn, mn))
            self.register_buffer("eye", torch.eye(mn).expand(c1 // g, mn, mn).clone(), False)

    def kernel(self) -> torch.Tensor:
        """The composed plain kernel ``[C_out, C_in/g, k, k]``."""
        if self.D is None:
            w = self.weight
        else:
            w = torch.einsum("ims,ois->oim", self.D + self.eye, self.weight)
        return w.reshape(self.c2, self.c1 // self.g, self.k, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), None, self.s, self.p, 1, self.g)

    def as_conv(self) -> nn.Conv2d:
        """A bias-free ``nn.Conv2d`` computing the same function."""
        conv = nn.Conv2d(self.c1, self.c2, self.k, self.s, self.p, groups=self.g, bias=False)
        conv.weight.data.copy_(self.kernel().detach())
        return conv


class DOConvBN(nn.Module):
    """DO-Conv + BatchNorm + SiLU (or no activation); folds into one biased conv."""

    def __init__(
        self, c1: int, c2: int, k: int = 3, s: int = 1, g: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv: nn.Module = DOConv2d(c1, c2, k, s, g)
        self.bn: nn.Module = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Replace DO-Conv + BN by one conv with bias."""
        if not isinstance(self.conv, DOConv2d):
            return
        plain = self.conv.as_conv()
        assert isinstance(self.bn, nn.BatchNorm2d)
        w, b = fold_bn(plain.weight, None, self.bn)
        self.conv, self.bn = fused_conv(plain, w, b), nn.Identity()
