"""Weighted residual fusion path across backbone levels (paper eq. 1).

``F = f(sum_i Conv1x1(Conv3x3(resize(x_i))) * exp(w_i) / sum_j exp(w_j))``; the result
is added to the target level's feature (the residual path). The 3x3 conv is depthwise
(the 1x1 after it mixes channels), which keeps the path cheap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.nn.conv import Conv


class WeightedFusion(nn.Module):
    """Fuse feature maps of several strides into the target stride with softmax weights.

    ``in_channels``/``in_strides`` describe the sources; sources finer than the target are
    average-pooled, coarser ones nearest-upsampled (both by integer factors).
    """

    def __init__(
        self, in_channels: list[int], in_strides: list[int], out_channels: int, out_stride: int
    ) -> None:
        super().__init__()
        self.in_strides = list(in_strides)
        self.out_stride = out_stride
        self.branches = nn.ModuleList(
            nn.Sequential(Conv(c, c, 3, g=c), Conv(c, out_channels, 1, act=False))
            for c in in_channels
        )
        self.weights = nn.Parameter(torch.zeros(len(in_channels)))
        self.out = Conv(out_channels, out_channels, 1)

    def normalised_weights(self) -> torch.Tensor:
        """Softmax-normalised fusion weights (sum to 1)."""
        return torch.softmax(self.weights, 0)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        w = self.normalised_weights()
        acc: torch.Tensor | None = None
        for i, (x, branch, s) in enumerate(zip(xs, self.branches, self.in_strides, strict=True)):
            if s < self.out_stride:
                f = self.out_stride // s
                x = F.avg_pool2d(x, kernel_size=f, stride=f)
            elif s > self.out_stride:
                x = F.interpolate(x, scale_factor=float(s // self.out_stride), mode="nearest")
            y = branch(x) * w[i]
            acc = y if acc is None else acc + y
        assert acc is not None
        return self.out(acc)
