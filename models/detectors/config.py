"""Variant configurations: one isomorphic design, depth/width per variant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class DetectorConfig:
    """Depth/width of one detector variant.

    ``widths``: channels of stem, stride-4, stride-8, stride-16, stride-32 stages.
    ``depths``: C3 repeats of the stride-4/8/16 Block-B stages; ``swin_depth``: Swin
    blocks of each Block-S stage; ``swin_levels``: which of stride 16/32 use Block-S
    (the others use Block-B). ``neck_depth``: C3 repeats in each Block-N;
    ``head_convs``: 3x3 convs per head branch; ``head_width``: head channels;
    ``bn_momentum``: BatchNorm running-stat momentum (higher for very short runs).
    """

    name: str
    widths: tuple[int, int, int, int, int]
    depths: tuple[int, int, int]
    swin_depth: int = 2
    swin_levels: tuple[int, ...] = (16, 32)
    swin_heads: int = 4
    window: int = 7
    neck_depth: int = 1
    head_width: int = 64
    head_convs: int = 2
    strides: tuple[int, ...] = (8, 16, 32)
    bn_momentum: float = 0.03
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        for k in ("widths", "depths", "swin_levels", "strides"):
            d[k] = tuple(d[k])
        return cls(**d)


VARIANTS: dict[str, DetectorConfig] = {
    # Teacher: deeper and wider, Swin at stride 16 and 32.
    "t-model": DetectorConfig(
        name="t-model",
        widths=(32, 64, 128, 144, 176),
        depths=(2, 3, 3),
        swin_depth=2,
        swin_heads=4,
        neck_depth=1,
        head_width=64,
        head_convs=2,
    ),
    # Student: the same graph, shallow and narrow; Block-S only at stride 32 (window
    # attention at stride 16 cost more CPU latency than its FLOPs suggest).
    "s-model": DetectorConfig(
        name="s-model",
        widths=(16, 32, 48, 80, 128),
        depths=(1, 1, 1),
        swin_depth=2,
        swin_levels=(32,),
        swin_heads=4,
        neck_depth=1,
        head_width=64,
        head_convs=1,
    ),
    # Tests only: tiny and fast.
    "tiny": DetectorConfig(
        name="tiny",
        widths=(8, 16, 32, 32, 64),
        depths=(1, 1, 1),
        swin_depth=2,
        swin_heads=2,
        swin_levels=(32,),
        neck_depth=1,
        head_width=32,
        head_convs=1,
        bn_momentum=0.1,
    ),
}


def get_config(arch: str, **overrides: Any) -> DetectorConfig:
    """Look up a variant by name (``t-model``, ``s-model``, ``tiny``) with overrides."""
    if arch not in VARIANTS:
        raise KeyError(f"unknown architecture {arch!r}; choose from {sorted(VARIANTS)}")
    return replace(VARIANTS[arch], **overrides) if overrides else VARIANTS[arch]
