"""Decoupled detection head: per level a cls branch (with dual attention), a reg branch
and an obj branch. Raw (pre-activation) outputs, channel order tx,ty,tw,th,obj,cls..."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.nn.attention import DualAttention
from models.nn.conv import Conv


class DecoupledHead(nn.Module):
    """One decoupled head per level; returns ``[B, na, H, W, 5 + C]`` per level."""

    def __init__(
        self,
        in_channels: tuple[int, ...],
        num_classes: int,
        width: int = 64,
        convs: int = 2,
        na: int = 1,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        self.nc, self.na = num_classes, na
        self.stems = nn.ModuleList(Conv(c, width, 1) for c in in_channels)
        self.cls_convs = nn.ModuleList(
            nn.Sequential(*(Conv(width, width, 3) for _ in range(convs)), DualAttention(width))
            for _ in in_channels
        )
        self.reg_convs = nn.ModuleList(
            nn.Sequential(*(Conv(width, width, 3) for _ in range(convs))) for _ in in_channels
        )
        self.cls_preds = nn.ModuleList(nn.Conv2d(width, na * num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(width, na * 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(width, na, 1) for _ in in_channels)
        bias = -math.log((1 - prior_prob) / prior_prob)
        for m in [*self.cls_preds, *self.obj_preds]:
            nn.init.constant_(m.bias, bias)
        for m in self.reg_preds:
            nn.init.zeros_(m.bias)
            nn.init.normal_(m.weight, std=0.01)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        outs = []
        for i, x in enumerate(feats):
            x = self.stems[i](x)
            h, w = int(x.shape[2]), int(x.shape[3])  # static sizes: no shape ops in ONNX
            cls = self.cls_preds[i](self.cls_convs[i](x)).reshape(-1, self.na, self.nc, h, w)
            r = self.reg_convs[i](x)
            reg = self.reg_preds[i](r).reshape(-1, self.na, 4, h, w)
            obj = self.obj_preds[i](r).reshape(-1, self.na, 1, h, w)
            outs.append(torch.cat((reg, obj, cls), 2).permute(0, 1, 3, 4, 2).contiguous())
        return outs
