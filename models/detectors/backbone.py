"""Backbone: 3x3 stem, Block-B stages, Block-S (Swin) at deep levels, weighted fusion
path (eq. 1) into stride 16, SPPF on stride 32. Returns features at strides 8, 16, 32."""

from __future__ import annotations

import torch
from torch import nn

from models.detectors.config import DetectorConfig
from models.nn.conv import BlockB, Conv
from models.nn.fusion import WeightedFusion
from models.nn.sppf import SPPF
from models.nn.swin import BlockS


class Backbone(nn.Module):
    """CNN + Swin hybrid backbone of the T/S models."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        c0, c1, c2, c3, c4 = cfg.widths
        d1, d2, d3 = cfg.depths
        self.stem = Conv(3, c0, 3, 2)  # stride 2
        self.stage1 = BlockB(c0, c1, d1)  # stride 4
        self.stage2 = BlockB(c1, c2, d2)  # stride 8
        self.stage3: nn.Module = (
            BlockS(c2, c3, cfg.swin_depth, cfg.swin_heads, cfg.window)
            if 16 in cfg.swin_levels
            else BlockB(c2, c3, d3)
        )
        self.stage4: nn.Module = (
            BlockS(c3, c4, cfg.swin_depth, cfg.swin_heads, cfg.window)
            if 32 in cfg.swin_levels
            else BlockB(c3, c4, d3)
        )
        self.sppf = SPPF(c4, c4)
        self.fusion = WeightedFusion([c2, c3, c4], [8, 16, 32], c3, 16)
        self.out_channels = (c2, c3, c4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stage1(self.stem(x))
        p3 = self.stage2(x)
        p4 = self.stage3(p3)
        p5 = self.sppf(self.stage4(p4))
        p4 = p4 + self.fusion([p3, p4, p5])  # weighted residual fusion path (eq. 1)
        return p3, p4, p5
