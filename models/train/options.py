"""Training options (what ``lineinspect train`` exposes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class TrainOptions:
    """All knobs of one training run; stored in every checkpoint."""

    data: str
    arch: str = "s-model"
    epochs: int = 100
    imgsz: int = 224
    batch: int = 16
    out: str = "runs/train"
    resume: bool = False
    seed: int = 0
    # Seed of the validation carve-out; None: ``seed``. Fixed apart from ``seed`` to
    # compare training seeds on one validation set, and kept equal to the teacher's when
    # distilling (a teacher that trained on the student's carve-out would leak it).
    split_seed: int | None = None
    threads: int = 2
    workers: int = 1
    device: str = "auto"
    # anchor-based (YOLOv5 + k-means anchors) won the comparison on NEU-DET by a wide
    # margin (docs/models.md), so it is the default; "anchor_free" is TAL + YOLOX decoding.
    head: str = "anchor_based"
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 3.0
    final_lr_ratio: float = 0.05
    augment: bool = True
    mosaic_prob: float = 1.0
    close_mosaic: int = 15
    eval_interval: int = 5
    val_fraction: float = 0.15
    adaptive_weights: bool = True
    ema_decay: float = 0.9998
    cache: bool = True
    max_iters_per_epoch: int = 0  # 0: whole epoch (tests use a small number)
    init_from: str = ""  # warm start: checkpoint path or registry ref with a model.pt

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)
