"""Learning-rate schedule: linear warm-up then cosine decay, a pure function of the step."""

from __future__ import annotations

import math


def lr_factor(step: int, total: int, warmup: int, final_ratio: float = 0.05) -> float:
    """Multiplier of the base LR at optimiser ``step`` (0-based) of ``total`` steps."""
    if warmup > 0 and step < warmup:
        return max(1e-3, (step + 1) / warmup)
    span = max(1, total - warmup)
    p = min(1.0, (step - warmup) / span)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * p))
