"""Layer pruning (the pruning paper's step 3): the residual C3 bottlenecks with the
smallest mean |gamma| are removed whole.

A bottleneck with its shortcut computes ``x + cv2(cv1(x))``; removing the branch leaves
``x``, so the block is replaced by ``nn.Identity`` and the surrounding C3 keeps its
shapes. Bottlenecks without a shortcut (the neck's Block-N C3s) are the only path
between their input and output; replacing one by identity would change what the C3
computes rather than drop a refinement of it, so they are not candidates.
"""

from __future__ import annotations

import torch
from torch import nn

from models.detectors import Detector
from models.nn.conv import Bottleneck


def candidate_blocks(model: Detector) -> dict[str, Bottleneck]:
    """Residual bottlenecks (``name -> module``), the blocks layer pruning may remove."""
    return {n: m for n, m in model.named_modules() if isinstance(m, Bottleneck) and m.add}


def block_scores(model: Detector) -> dict[str, float]:
    """Mean |gamma| over both BatchNorms of each candidate block."""
    out = {}
    for name, b in candidate_blocks(model).items():
        g = torch.cat([b.cv1.bn.weight.detach().abs(), b.cv2.bn.weight.detach().abs()])
        out[name] = float(g.mean())
    return out


def weakest_blocks(model: Detector, k: int) -> list[str]:
    """The ``k`` candidate blocks with the smallest mean |gamma| (ascending)."""
    scores = block_scores(model)
    if k > len(scores):
        raise ValueError(f"--layers {k}: the model has only {len(scores)} residual blocks")
    return sorted(scores, key=lambda n: scores[n])[:k]


def remove_blocks(model: Detector, names: list[str]) -> list[str]:
    """Replace the named residual bottlenecks by ``nn.Identity`` in place; returns them."""
    cands = candidate_blocks(model)
    for name in names:
        if name not in cands:
            raise ValueError(f"{name!r} is not a residual bottleneck of this model")
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if isinstance(parent, nn.Sequential) and leaf.isdigit():
            parent[int(leaf)] = nn.Identity()
        else:
            setattr(parent, leaf, nn.Identity())
    return list(names)
