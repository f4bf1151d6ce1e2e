"""RepGhostBlock of the RepGhostPAN neck (LIDD-Net fig. 6).

A Ghost conv makes half the output channels with a 1x1 conv and the other half with a
cheap depthwise op on them. In the RepGhost form the cheap op is multi-branch at
training time: an identity-BN branch, four 1x1 and four 3x3 depthwise conv+BN branches,
summed. ``RepDW.switch_to_deploy`` folds them into one 3x3 depthwise conv with bias
(1x1 kernels zero-padded to 3x3, identity-BN as a centred unit kernel scaled by gamma/sigma).
With ``rep=False`` the cheap op is a single 3x3 dw conv + BN (GhostPAN, the baseline).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.nn.conv import Conv
from models.nn.reparam import fold_bn, fused_conv


def _dw_bn(c: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c, c, k, 1, k // 2, groups=c, bias=False),
        nn.BatchNorm2d(c, eps=1e-3, momentum=0.03),
    )


class RepDW(nn.Module):
    """Multi-branch depthwise 3x3 (identity-BN + ``n1`` 1x1 + ``n3`` 3x3) → one dw conv."""

    def __init__(self, c: int, n1: int = 4, n3: int = 4, rep: bool = True) -> None:
        super().__init__()
        self.c = c
        self.identity: nn.Module | None = (
            nn.BatchNorm2d(c, eps=1e-3, momentum=0.03) if rep else None
        )
        self.b1 = nn.ModuleList(_dw_bn(c, 1) for _ in range(n1 if rep else 0))
        self.b3 = nn.ModuleList(_dw_bn(c, 3) for _ in range(n3 if rep else 1))
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        y = sum(b(x) for b in [*self.b3, *self.b1])
        assert isinstance(y, torch.Tensor)
        return y + self.identity(x) if self.identity is not None else y

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold every branch into ``self.fused`` (a biased 3x3 depthwise conv)."""
        if self.fused is not None:
            return
        ref = self.b3[0][0]
        w, b = torch.zeros_like(ref.weight), torch.zeros(self.c)
        for br in self.b3:
            wi, bi = fold_bn(br[0].weight, None, br[1])
            w, b = w + wi, b + bi
        for br in self.b1:
            wi, bi = fold_bn(br[0].weight, None, br[1])
            w, b = w + F.pad(wi, [1, 1, 1, 1]), b + bi
        if self.identity is not None:
            unit = torch.zeros_like(ref.weight)
            unit[:, 0, 1, 1] = 1.0
            wi, bi = fold_bn(unit, None, self.identity)  # type: ignore[arg-type]
            w, b = w + wi, b + bi
        self.fused = fused_conv(ref, w, b)
        self.identity, self.b1, self.b3 = None, nn.ModuleList(), nn.ModuleList()


class GhostConv(nn.Module):
    """Ghost conv ``c1 → c2``: 1x1 conv to ``c2/2``, cheap (Rep)DW on it, concat."""

    def __init__(self, c1: int, c2: int, act: bool = True, rep: bool = True) -> None:
        super().__init__()
        self.primary = Conv(c1, c2 // 2, 1, act=act)
        self.cheap = RepDW(c2 - c2 // 2, rep=rep) if c2 // 2 == c2 - c2 // 2 else None
        if self.cheap is None:
            raise ValueError(f"GhostConv needs an even output width, got {c2}")
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.primary(x)
        assert self.cheap is not None
        return torch.cat((p, self.act(self.cheap(p))), 1)


class RepGhostBlock(nn.Module):
    """Ghost bottleneck ``c1 → c2``: GhostConv, GhostConv (no act), + a 1x1 shortcut."""

    def __init__(self, c1: int, c2: int, rep: bool = True) -> None:
        super().__init__()
        self.ghost1 = GhostConv(c1, c2, True, rep)
        self.ghost2 = GhostConv(c2, c2, False, rep)
        self.shortcut: nn.Module = nn.Identity() if c1 == c2 else Conv(c1, c2, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ghost2(self.ghost1(x)) + self.shortcut(x)
