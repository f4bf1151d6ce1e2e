"""Splits that never move: a sample's train/val split is a pure function of its sha256,
and the golden set is frozen once, from N images per class of a dataset's first import."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

_SCALE = float(1 << 64)

#: The golden set takes at most 1/GOLDEN_MAX_SHARE of each class of the first import.
GOLDEN_MAX_SHARE = 5


def split_of(sha256: str, val_fraction: float) -> str:
    """``"val"`` when the first 64 bits of the hash, read as a fraction of 2^64, fall
    below ``val_fraction``, else ``"train"``. Adding samples never moves another one."""
    return "val" if int(sha256[:16], 16) / _SCALE < val_fraction else "train"


def majority_label(boxes: Sequence[dict[str, Any]]) -> str | None:
    """The most frequent class name among ``boxes`` (alphabetically first on ties)."""
    counts = Counter(str(b["label"]) for b in boxes)
    if not counts:
        return None
    best = max(counts.values())
    return min(name for name, n in counts.items() if n == best)


def pick_golden(
    candidates: Iterable[tuple[str, Sequence[dict[str, Any]]]], per_class: int
) -> set[str]:
    """Choose up to ``per_class`` samples per majority class (lowest sha256 first, so
    the choice depends only on the content) from ``(sha256, boxes)`` pairs, and never
    more than a fifth of a class's images, so a small first import keeps most of its
    images for training. Images without boxes form their own group."""
    groups: dict[str, list[str]] = {}
    for sha, boxes in candidates:
        groups.setdefault(majority_label(boxes) or "", []).append(sha)
    chosen: set[str] = set()
    for members in groups.values():
        chosen.update(sorted(members)[: min(per_class, len(members) // GOLDEN_MAX_SHARE)])
    return chosen
