"""Attention masks for feature distillation (paper eq. 9-10, FGD definitions).

The distilled features are the neck outputs. At strides 16 and 32 the neck output *is* the
dual attention output of the bottom-up Block-N, ``M(F) = (M_c(F) + M_s(F)) * F`` (eq. 9,
models/nn/attention.py); at stride 8 it is the C3 output of the top-down Block-N, whose
input went through the same attention. ``AttentionMask = softmax(M(F) / T)`` (eq. 10) is
reduced FGD-style to one spatial and one channel mask:

* spatial ``A_S = H * W * softmax_hw(mean_c |F| / T)``  → ``[B, H, W]``, sums to ``H * W``
* channel ``A_C = C * softmax_c(mean_hw |F| / T)``       → ``[B, C]``, sums to ``C``

so a uniform mask is all ones and the masks re-weight (never rescale) the feature loss.
"""

from __future__ import annotations

import torch


def spatial_attention(feat: torch.Tensor, temperature: float) -> torch.Tensor:
    """``H * W * softmax(mean_c |F| / T)`` over the ``H * W`` cells → ``[B, H, W]``."""
    b, _, h, w = feat.shape
    logits = feat.abs().mean(1).reshape(b, h * w) / temperature
    return (h * w * torch.softmax(logits.float(), 1)).reshape(b, h, w)


def channel_attention(feat: torch.Tensor, temperature: float) -> torch.Tensor:
    """``C * softmax(mean_hw |F| / T)`` over the ``C`` channels → ``[B, C]``."""
    c = feat.shape[1]
    logits = feat.abs().mean((2, 3)) / temperature
    return c * torch.softmax(logits.float(), 1)


def attention_masks(feat: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A_S [B, H, W], A_C [B, C])`` of a feature map ``[B, C, H, W]``."""
    return spatial_attention(feat, temperature), channel_attention(feat, temperature)
