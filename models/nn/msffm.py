"""MSFFM: the multi-scale feature fusion module at the end of CISB-Net (fig. 4).

Three dilated 3x3 depthwise branches (dilation 1, 2, 3) share one kernel (each has its
own BN), are summed and mixed by a 1x1 conv; an average-pool branch is funnelled by a
DO-Conv down to ``C/16`` channels, upsampled back to the input size and restored to
``C`` by a second DO-Conv; the residual branch is the input. Output = sum of the three.
At export the dilated branches and their BNs fold into one 7x7 depthwise conv (a 3x3
kernel at dilation d occupies offsets -d, 0, d of it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.nn.conv import Conv
from models.nn.doconv import DOConvBN
from models.nn.reparam import fold_bn


class MSFFM(nn.Module):
    """``x + mix(Σ_d BN_d(dwconv_d(x))) + up(funnel(avgpool(x)))`` with a shared dw kernel."""

    def __init__(self, c: int, dilations: tuple[int, ...] = (1, 2, 3), squeeze: int = 16) -> None:
        super().__init__()
        self.c, self.dilations = c, dilations
        self.weight = nn.Parameter(torch.empty(c, 1, 3, 3))  # shared by the dilated branches
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c, eps=1e-3, momentum=0.03) for _ in dilations)
        self.act = nn.SiLU(inplace=True)
        self.mix = Conv(c, c, 1, act=False)
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True)
        cs = max(c // squeeze, 4)
        self.down = DOConvBN(c, cs, 3)
        self.up = DOConvBN(cs, c, 3, act=False)
        self.fused: nn.Conv2d | None = None

    def _branches(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        s = sum(
            bn(F.conv2d(x, self.weight, None, 1, d, d, self.c))
            for d, bn in zip(self.dilations, self.bns, strict=True)
        )
        assert isinstance(s, torch.Tensor)
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[2]), int(x.shape[3])
        branch = self.mix(self.act(self._branches(x)))
        p = F.interpolate(self.down(self.pool(x)), size=(h, w), mode="nearest")
        return x + branch + self.up(p)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold the shared-kernel dilated branches and their BNs into one 7x7 dw conv."""
        if self.fused is not None:
            return
        k = 2 * max(self.dilations) + 1
        c = k // 2
        w, b = torch.zeros(self.c, 1, k, k), torch.zeros(self.c)
        for d, bn in zip(self.dilations, self.bns, strict=True):
            wi, bi = fold_bn(self.weight, None, bn)  # type: ignore[arg-type]
            w[:, :, c - d : c + d + 1 : d, c - d : c + d + 1 : d] += wi
            b += bi
        self.fused = nn.Conv2d(self.c, self.c, k, 1, c, groups=self.c, bias=True)
        self.fused.weight.data.copy_(w)
        assert self.fused.bias is not None
        self.fused.bias.data.copy_(b)
        del self.weight
        self.bns = nn.ModuleList()
