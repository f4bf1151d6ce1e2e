"""The detector (backbone + neck + head) and its builder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from models.detectors.backbone import Backbone
from models.detectors.config import DetectorConfig, get_config
from models.detectors.head import DecoupledHead
from models.detectors.neck import PANNeck
from models.processing import ModelSpec

Anchors = Sequence[Sequence[Sequence[float]]]


class Detector(nn.Module):
    """T/S-model detector. ``forward`` returns raw per-level outputs
    ``[B, na, H_l, W_l, 5 + C]`` (levels in the order of ``strides``) and nothing else."""

    def __init__(
        self,
        cfg: DetectorConfig,
        num_classes: int,
        head: str = "anchor_free",
        anchors: Anchors | None = None,
    ) -> None:
        super().__init__()
        if head not in ("anchor_free", "anchor_based"):
            raise ValueError(f"unknown head kind {head!r}")
        if head == "anchor_based" and (anchors is None or len(anchors) != len(cfg.strides)):
            raise ValueError("anchor_based head needs one anchor set per stride")
        self.cfg, self.num_classes, self.head_kind = cfg, num_classes, head
        self.strides = tuple(cfg.strides)
        self.anchors = (
            None
            if anchors is None or head == "anchor_free"
            else tuple(tuple((float(w), float(h)) for w, h in lvl) for lvl in anchors)
        )
        na = 1 if self.anchors is None else len(self.anchors[0])
        self.backbone = Backbone(cfg)
        self.neck = PANNeck(self.backbone.out_channels, cfg.neck_depth)
        self.head = DecoupledHead(
            self.neck.out_channels, num_classes, cfg.head_width, cfg.head_convs, na
        )
        self._init_bn()

    def _init_bn(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = 1e-3, self.cfg.bn_momentum

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.head(self.neck(self.backbone(x)))

    def spec(self, class_names: Sequence[str], imgsz: int) -> ModelSpec:
        """The :class:`ModelSpec` describing this detector's exported output."""
        return ModelSpec(
            class_names=tuple(class_names),
            imgsz=imgsz,
            strides=self.strides,
            head=self.head_kind,  # type: ignore[arg-type]
            anchors=self.anchors,
        )

    def build_args(self) -> dict[str, Any]:
        """Everything :func:`build_detector` needs to rebuild this model."""
        return {
            "cfg": self.cfg.to_dict(),
            "num_classes": self.num_classes,
            "head": self.head_kind,
            "anchors": None if self.anchors is None else [list(map(list, a)) for a in self.anchors],
        }


def build_detector(
    arch: str | DetectorConfig | dict[str, Any],
    num_classes: int,
    head: str = "anchor_free",
    anchors: Anchors | None = None,
) -> Detector:
    """Build a detector from a variant name, a config or a config dict (a LIDD-Net for
    its variants and configs: models/detectors/lidd.py; it ignores ``head``/``anchors``)."""
    from models.detectors.lidd import build_lidd, is_lidd

    if is_lidd(arch):
        return build_lidd(arch, num_classes)  # type: ignore[return-value,arg-type]
    if isinstance(arch, str):
        cfg = get_config(arch)
    elif isinstance(arch, dict):
        cfg = DetectorConfig.from_dict(arch)
    else:
        cfg = arch
    return Detector(cfg, num_classes, head, anchors)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
