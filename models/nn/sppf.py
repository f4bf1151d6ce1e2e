"""SPPF: spatial pyramid pooling (fast, serial max-pools), as in YOLOv5."""

from __future__ import annotations

import torch
from torch import nn

from models.nn.conv import Conv


class SPPF(nn.Module):
    """Equivalent to SPP(5, 9, 13) with three chained 5x5 max-pools."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))
