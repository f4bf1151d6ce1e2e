"""Quality Focal Loss (Li et al., GFL): ``|y - sigma|^beta * BCE(sigma, y)``, soft targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quality_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, beta: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """Element-wise QFL for logits and soft targets ``y`` in [0, 1] (same shape).

    With ``alpha`` set, the paper's (eq. 14) balancing ``alpha_t = y*alpha + (1-y)*(1-alpha)``
    is applied as well.
    """
    sigma = logits.sigmoid()
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = loss * (target - sigma).abs().pow(beta)
    if alpha is not None:
        loss = loss * (target * alpha + (1 - target) * (1 - alpha))
    return loss
