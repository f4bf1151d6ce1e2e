"""SimAM: a parameter-free 3-D attention (Yang et al., 2021).

Per channel, the energy of each neuron is ``(x - μ)² / (4(sigma² + λ)) + 0.5`` with the
channel's spatial mean ``μ`` and variance ``sigma²`` (over ``H·W - 1``); the output is
``x · sigmoid(energy)``. No parameters, nothing to fold at export.
"""

from __future__ import annotations

import torch
from torch import nn


class SimAM(nn.Module):
    """``x · sigmoid((x - μ)² / (4(sigma² + λ)) + 0.5)``, λ = 1e-4 by default."""

    def __init__(self, lam: float = 1e-4) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = max(int(x.shape[2]) * int(x.shape[3]) - 1, 1)
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        var = d.sum(dim=(2, 3), keepdim=True) / n
        return x * torch.sigmoid(d / (4 * (var + self.lam)) + 0.5)
