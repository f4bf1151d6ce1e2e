"""Global channel pruning by BatchNorm scale (network slimming, the pruning paper's
step 2) through torch-pruning's dependency graph, and the per-epoch gamma histogram."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from models.detectors import Detector
from models.prune.graph import build_pruner, prunable_bns, prunable_channels
from models.prune.structure import refresh_widths

# Fixed bin edges of |gamma| so histograms of successive epochs line up.
GAMMA_EDGES = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, float("inf"))


def gamma_values(bns: list[nn.BatchNorm2d]) -> np.ndarray:
    """|gamma| of every channel of ``bns``."""
    if not bns:
        return np.zeros(0, dtype=np.float32)
    return torch.cat([b.weight.detach().abs().float().cpu() for b in bns]).numpy()


def gamma_histogram(bns: list[nn.BatchNorm2d]) -> dict[str, Any]:
    """Counts of |gamma| per :data:`GAMMA_EDGES` bin, with its mean, median and the share
    below 0.01 (what a results.jsonl line of sparse training carries)."""
    g = gamma_values(bns)
    counts, _ = np.histogram(g, bins=np.array(GAMMA_EDGES))
    return {
        "edges": [e if np.isfinite(e) else "inf" for e in GAMMA_EDGES],
        "counts": [int(c) for c in counts],
        "mean": round(float(g.mean()), 5) if g.size else 0.0,
        "median": round(float(np.median(g)), 5) if g.size else 0.0,
        "below_0.01": round(float((g < 0.01).mean()), 4) if g.size else 0.0,
        "channels": int(g.size),
    }


def prune_channels(
    model: Detector, imgsz: int, ratio: float, max_ratio: float = 0.9
) -> dict[str, Any]:
    """Prune ``ratio`` of the prunable channels, globally by |gamma|, no layer losing more
    than ``max_ratio`` of its channels, in place; returns the prunable channel count before
    and after (the achieved share is the ratio of them)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio {ratio} not in [0, 1)")
    if ratio > max_ratio - 0.05:
        raise ValueError(f"pruning ratio {ratio} too close to the per-layer cap {max_ratio}")
    pruner = build_pruner(model, imgsz, ratio=ratio, max_ratio=max_ratio)
    roots, before = prunable_channels(pruner)
    threshold = _threshold(prunable_bns(pruner), ratio)
    was_training = model.training
    model.eval()
    pruner.step()
    model.train(was_training)
    refresh_widths(model)
    after = sum(int(getattr(m, "out_channels", getattr(m, "out_features", 0))) for m in roots)
    return {
        "prunable_channels_before": before,
        "prunable_channels_after": after,
        "pruned_share": round(1 - after / max(before, 1), 4),
        "gamma_threshold": threshold,
    }


def _threshold(bns: list[nn.BatchNorm2d], ratio: float) -> float:
    """The |gamma| quantile at ``ratio`` (for the record: the pruner ranks whole groups)."""
    g = gamma_values(bns)
    return round(float(np.quantile(g, ratio)), 6) if g.size else 0.0
