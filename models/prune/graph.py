"""torch-pruning's dependency graph and BN-scale pruner over a T/S detector, and which
layers it must leave alone.

Ignored (their output channels are never pruned; a group that would prune one is not
pruned at all):

* the head's prediction convs (``cls_preds``, ``reg_preds``, ``obj_preds``): their
  outputs are the anchors x (5 + classes) contract of the exported graph;
* the attention internals: the channel-reduction MLP, the pre-pool 1x1 conv and the
  whole spatial branch of every :class:`DualAttention`. The feature channels that pass
  *through* an attention module (``F' = (M_c + M_s) * F``) are pruned consistently with
  ``M_c``'s last conv and BatchNorm, which the dependency graph couples to them;
* the Swin ``qkv`` projections: heads and head dims stay, so the window attention
  reshapes stay valid. The token (residual) dim of a Block-S is prunable: it is coupled
  through the LayerNorms, ``proj``, the MLP and the patch-merging conv, whose BatchNorm
  scores it; :class:`~models.nn.swin.WindowAttention` reads its head dim from ``qkv``;
* the parameters outside any layer (the fusion weights of eq. 1, one per source level;
  the Swin relative-position bias tables, one column per head): neither has a channel
  dimension;
* BatchNorms that belong to no prunable group: they are not penalised either, so the
  sparsity term only pushes scales that pruning can act on.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from models.detectors import Detector
from models.nn.attention import DualAttention
from models.nn.swin import SwinBlock


def ignored_layers(model: Detector) -> list[nn.Module | nn.Parameter]:
    """Modules whose output channels pruning must not touch, and the free parameters it
    must leave whole (see the module docstring)."""
    h = model.head
    out: list[nn.Module | nn.Parameter] = [*h.cls_preds, *h.reg_preds, *h.obj_preds]
    out.append(model.backbone.fusion.weights)
    for m in model.modules():
        if isinstance(m, DualAttention):
            out += [m.channel.pre, m.channel.mlp, m.spatial.body, m.spatial.bn]
        elif isinstance(m, SwinBlock):
            out += [m.attn.qkv, m.attn.bias_table]
    return out


def build_pruner(
    model: Detector, imgsz: int, ratio: float = 0.5, reg: float = 1e-4, max_ratio: float = 0.9
) -> tp.pruner.BNScalePruner:
    """A global BN-scale pruner (raw |gamma| compared across all groups, the paper's global
    threshold) at channel ratio ``ratio``, no layer below ``1 - max_ratio`` of its width
    (:class:`CappedBNScaleImportance`).
    The graph is traced in eval mode, so tracing leaves the BatchNorm statistics alone."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with warnings.catch_warnings():  # the free parameters it names are ignored above
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        pruner = _pruner(model, imgsz, ratio, reg, max_ratio, device)
    prunable = {id(b) for b in prunable_bns(pruner)}
    pruner.ignored_layers.extend(
        m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and id(m) not in prunable
    )
    model.train(was_training)
    return pruner


class CappedBNScaleImportance(tp.importance.BNScaleImportance):  # type: ignore[misc]
    """|gamma| importance whose top ``1 - max_ratio`` channels of every group (at least one)
    score +inf, so no global threshold reaches them.

    torch-pruning's global step removes every channel of a group below the threshold, and
    skips a group it would empty; its ``max_pruning_ratio`` is checked only between
    iterative steps. After sparse training whole layers sit below the threshold, so
    without this cap those layers, the most prunable ones, would keep all their channels
    and the share removed would fall short of the ratio."""

    def __init__(self, max_ratio: float) -> None:
        super().__init__(normalizer=None)
        self.max_ratio = max_ratio

    def __call__(self, group: Any) -> torch.Tensor | None:
        imp = super().__call__(group)
        if imp is None or imp.numel() == 0:
            return imp
        keep = max(1, math.ceil(imp.numel() * (1 - self.max_ratio)))
        imp = imp.clone()
        imp[torch.topk(imp, keep).indices] = float("inf")
        return imp


def _pruner(
    model: Detector, imgsz: int, ratio: float, reg: float, max_ratio: float, device: torch.device
) -> tp.pruner.BNScalePruner:
    return tp.pruner.BNScalePruner(
        model,
        torch.zeros(1, 3, imgsz, imgsz, device=device),
        importance=CappedBNScaleImportance(max_ratio),
        reg=reg,
        global_pruning=True,
        pruning_ratio=ratio,
        max_pruning_ratio=max_ratio,
        ignored_layers=ignored_layers(model),
    )


def prunable_groups(pruner: tp.pruner.BNScalePruner) -> list[Any]:
    """The dependency groups the pruner may prune (rooted at a conv or linear's outputs)."""
    return list(
        pruner.DG.get_all_groups(
            ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types
        )
    )


def prunable_bns(pruner: tp.pruner.BNScalePruner) -> list[nn.BatchNorm2d]:
    """BatchNorms whose channels belong to a prunable group: what gamma scores and the
    sparsity term regularises."""
    seen: dict[int, nn.BatchNorm2d] = {}
    for group in prunable_groups(pruner):
        for dep, _ in group:
            m = dep.target.module
            if isinstance(m, nn.BatchNorm2d):
                seen[id(m)] = m
    return list(seen.values())


def prunable_channels(pruner: tp.pruner.BNScalePruner) -> tuple[list[nn.Module], int]:
    """Root modules of the groups gamma can score (prunable, with a BatchNorm; the Swin
    MLP's hidden units have none, so BN slimming leaves them) and their output channels."""
    roots = [
        g[0][0].target.module
        for g in prunable_groups(pruner)
        if any(isinstance(dep.target.module, nn.BatchNorm2d) for dep, _ in g)
    ]
    return roots, sum(_out_channels(m) for m in roots)


def _out_channels(m: nn.Module) -> int:
    if isinstance(m, nn.Conv2d):
        return int(m.out_channels)
    if isinstance(m, nn.Linear):
        return int(m.out_features)
    raise TypeError(f"unexpected group root {type(m).__name__}")
