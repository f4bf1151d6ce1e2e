"""Seeded, per-class-stratified train/validation carve-out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from models.data.sample import Sample


def stratified_split(
    samples: Sequence[Sample], val_fraction: float = 0.15, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, val), stratified by each image's majority class.

    Deterministic and independent of the input order: within each stratum (majority class,
    or ``-1`` for images without boxes) images are sorted by file name and then shuffled by
    a generator seeded with ``(seed, class)``; the first ``round(n * val_fraction)`` (half
    up, at most ``n - 1`` so every stratum keeps a training image) go to validation.
    Both outputs keep the input order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    strata: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        strata.setdefault(s.majority_class, []).append(i)
    val_idx: set[int] = set()
    for cls in sorted(strata):
        members = sorted(
            strata[cls], key=lambda i: (samples[i].image_path.name, str(samples[i].image_path))
        )
        n = len(members)
        n_val = min(math.floor(n * val_fraction + 0.5), max(n - 1, 0))
        rng = np.random.default_rng([seed, cls + 1])
        order = rng.permutation(n)
        val_idx.update(members[j] for j in order[:n_val])
    train = [s for i, s in enumerate(samples) if i not in val_idx]
    val = [s for i, s in enumerate(samples) if i in val_idx]
    return train, val
