"""LIDD-Net (CISB-Net + RepGhostPAN + GFL head + training-only LATM) and the variants of
its ablation, built from :class:`LIDDConfig`.

``forward`` returns raw outputs: in training mode the main head's per-level GFL logits
``[B, H, W, C + 4(R+1)]`` followed by the auxiliary head's (when there is one); in eval
mode the served contract layout ``[B, 1, H, W, 5 + C]`` per level (DFL integral inside,
:func:`models.detectors.gfl_head.to_contract`). Losses and assignment live in
models/losses/gfl.py. :meth:`LIDDNet.deploy` is what is exported: every DO-Conv,
RepGhost branch set and conv+BN folded, the auxiliary head dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from models.detectors.gfl_head import AuxHead, GFLHead, to_contract
from models.detectors.lidd_parts import CISBNet, GhostPAN, ShuffleNetV2
from models.nn.reparam import deploy
from models.processing import ModelSpec

GUIDANCE = ("none", "agm", "latm")


@dataclass(frozen=True)
class LIDDConfig:
    """One LIDD-Net variant. ``backbone``: ``cisb`` or ``shufflenet`` (baseline);
    ``widths``: stem and stride-8/16/32 channels; ``depths``: stride-1 blocks after each
    stage's down-sampling block; ``neck``: ``repghost`` or ``ghost``; ``guidance``: what
    steers the label assignment (``none``: the main head, ``agm``: an auxiliary head,
    ``latm``: the auxiliary head fused with the main one)."""

    name: str
    backbone: str = "cisb"
    widths: tuple[int, int, int, int] = (24, 40, 80, 160)
    depths: tuple[int, int, int] = (3, 7, 3)
    msffm: bool = True
    neck: str = "repghost"
    neck_width: int = 96
    head_convs: int = 2
    head_kernel: int = 5
    reg_max: int = 7
    guidance: str = "latm"
    aux_width: int = 64
    strides: tuple[int, ...] = (8, 16, 32)
    bn_momentum: float = 0.03
    family: str = "lidd"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LIDDConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        for k in ("widths", "depths", "strides"):
            d[k] = tuple(d[k])
        return cls(**d)


_BASE = LIDDConfig(
    name="lidd-base",
    backbone="shufflenet",
    widths=(24, 116, 232, 464),
    msffm=False,
    neck="ghost",
    guidance="agm",
)
LIDD_VARIANTS: dict[str, LIDDConfig] = {
    # Table 2 of the paper, row by row: NanoDet-Plus-like baseline (ShuffleNetV2 1.0x,
    # GhostPAN, assign guidance), + LATM, + CISB-Net, + RepGhostPAN (= LIDD-Net).
    "lidd-base": _BASE,
    "lidd-latm": replace(_BASE, name="lidd-latm", guidance="latm"),
    "lidd-cisb": replace(
        _BASE, name="lidd-cisb", backbone="cisb", widths=(24, 40, 80, 160), msffm=True
    ),
    "lidd-net": LIDDConfig(name="lidd-net"),
    # Tests only: tiny and fast.
    "lidd-tiny": LIDDConfig(
        name="lidd-tiny",
        widths=(8, 16, 32, 32),
        depths=(1, 1, 1),
        neck_width=16,
        head_convs=1,
        aux_width=16,
        bn_momentum=0.1,
    ),
}


def is_lidd(arch: str | dict[str, Any] | object) -> bool:
    """Whether ``arch`` (a variant name, config dict or config) describes a LIDD-Net."""
    if isinstance(arch, str):
        return arch in LIDD_VARIANTS
    if isinstance(arch, dict):
        return arch.get("family") == "lidd"
    return isinstance(arch, LIDDConfig)


class LIDDNet(nn.Module):
    """LIDD-Net and its ablation variants (anchor-free contract, one row per cell)."""

    head_kind = "anchor_free"
    anchors = None

    def __init__(self, cfg: LIDDConfig, num_classes: int) -> None:
        super().__init__()
        if cfg.guidance not in GUIDANCE:
            raise ValueError(f"unknown guidance {cfg.guidance!r}; choose from {GUIDANCE}")
        self.cfg, self.num_classes = cfg, num_classes
        self.strides = tuple(cfg.strides)
        if cfg.backbone == "cisb":
            self.backbone: nn.Module = CISBNet(cfg.widths, cfg.depths, cfg.msffm)
        elif cfg.backbone == "shufflenet":
            self.backbone = ShuffleNetV2(cfg.widths, cfg.depths)
        else:
            raise ValueError(f"unknown backbone {cfg.backbone!r}")
        if cfg.neck not in ("repghost", "ghost"):
            raise ValueError(f"unknown neck {cfg.neck!r}")
        chans = self.backbone.out_channels
        self.neck = GhostPAN(chans, cfg.neck_width, rep=cfg.neck == "repghost")
        w = cfg.neck_width
        self.head = GFLHead(w, num_classes, cfg.reg_max, cfg.head_convs, cfg.head_kernel)
        self.aux: AuxHead | None = (
            None
            if cfg.guidance == "none"
            else AuxHead(w, num_classes, cfg.reg_max, cfg.aux_width, cfg.guidance == "latm")
        )
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = 1e-3, cfg.bn_momentum

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.neck(self.backbone(x))
        raw = self.head(feats)
        if self.training:
            return raw + (self.aux(feats) if self.aux is not None else [])
        return [to_contract(r, self.num_classes, self.cfg.reg_max) for r in raw]

    def deploy(self) -> LIDDNet:
        """The exported form: an eval copy with everything folded and no auxiliary head."""
        aux, self.aux = self.aux, None
        try:
            m = deploy(self)
        finally:
            self.aux = aux
        assert isinstance(m, LIDDNet)
        return m

    def spec(self, class_names: Sequence[str], imgsz: int) -> ModelSpec:
        """The :class:`ModelSpec` of the exported output (anchor-free contract)."""
        return ModelSpec(
            class_names=tuple(class_names),
            imgsz=imgsz,
            strides=self.strides,
            head="anchor_free",
            anchors=None,
        )

    def build_args(self) -> dict[str, Any]:
        """Everything :func:`build_lidd` needs to rebuild this model."""
        return {
            "cfg": self.cfg.to_dict(),
            "num_classes": self.num_classes,
            "head": "anchor_free",
            "anchors": None,
        }


def build_lidd(arch: str | LIDDConfig | dict[str, Any], num_classes: int) -> LIDDNet:
    """Build a LIDD-Net from a variant name, a config or a config dict."""
    if isinstance(arch, str):
        cfg = LIDD_VARIANTS[arch]
    elif isinstance(arch, dict):
        cfg = LIDDConfig.from_dict(arch)
    else:
        cfg = arch
    return LIDDNet(cfg, num_classes)
