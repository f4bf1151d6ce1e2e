"""Structural re-parameterisation at export: conv+BN folding and the deploy copy.

A module that has a training-time form and a single-conv deploy form implements
``switch_to_deploy()`` (DO-Conv, the RepGhost multi-branch depthwise conv); :func:`deploy`
calls it on every such module of a copy, then folds every ``Conv`` (conv + BN + act)
into a biased conv followed by the activation. The copy computes the same function.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from models.nn.conv import Conv


def fold_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold ``bn`` into the preceding conv: ``W' = W·g/s``, ``b' = β + (b - μ)·g/s`` with
    ``g`` the BN scale and ``s = √(var + ε)``."""
    assert bn.running_mean is not None and bn.running_var is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias + (b - bn.running_mean) * scale


def fused_conv(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A biased ``nn.Conv2d`` with ``conv``'s geometry and the given weight and bias."""
    out = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        conv.stride,  # type: ignore[arg-type]
        conv.padding,  # type: ignore[arg-type]
        conv.dilation,  # type: ignore[arg-type]
        conv.groups,
        bias=True,
    )
    out.weight.data.copy_(weight.detach())
    assert out.bias is not None
    out.bias.data.copy_(bias.detach())
    return out


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One conv equal (in eval mode) to ``bn(conv(x))``."""
    w, b = fold_bn(conv.weight, conv.bias, bn)
    return fused_conv(conv, w, b)


@torch.no_grad()
def deploy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every re-parameterisable part folded."""
    m = copy.deepcopy(model).cpu().eval()
    for mod in list(m.modules()):
        fn = getattr(mod, "switch_to_deploy", None)
        if callable(fn):
            fn()
    for mod in list(m.modules()):
        if isinstance(mod, Conv) and isinstance(mod.bn, nn.BatchNorm2d):
            mod.conv = fuse_conv_bn(mod.conv, mod.bn)
            mod.bn = nn.Identity()  # type: ignore[assignment]
    return m
