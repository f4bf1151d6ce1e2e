"""Per-term loss magnitudes at the start of a distillation run (``lineinspect distil
--measure N``): the numbers the default gains of :mod:`models.distill.loss` are set from,
and what to re-check when the teacher, the input size or the neck widths change."""

from __future__ import annotations

from typing import Any

import torch

from models.distill.attention import attention_masks
from models.distill.trainer import DistillTrainer, neck_features


@torch.no_grad()
def measure_terms(trainer: DistillTrainer, batches: int = 3) -> dict[str, Any]:
    """Mean over ``batches`` training batches (augmented, as training sees them) of every
    unweighted term, ``gain * term``, the weighted detection total, and the largest value of
    the teacher's spatial/channel attention masks per level (1.0 means a flat mask)."""
    o = trainer.opts
    trainer.dataset.set_epoch(0, o.epochs)
    loader = trainer.train_loader(workers=0)
    trainer.model.train()
    sums: dict[str, float] = {}
    peaks: list[list[float]] = []
    n = 0
    for images, targets, *_ in loader:
        if n >= batches:
            break
        images, targets = images.to(trainer.device).float(), targets.to(trainer.device)
        _, parts = trainer.compute_loss(images, targets)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        with neck_features(trainer.teacher.model) as feats:
            trainer.teacher.model(images)
        t = trainer.dcfg.attn_temperature
        peaks.append([float(m.max()) for f in feats for m in attention_masks(f.float(), t)])
        n += 1
    n = max(n, 1)
    raw = {k: v / n for k, v in sums.items()}
    gains = dict(trainer.criterion.gains, **trainer.dcfg.gains)
    weighted = {k: gains[k] * v for k, v in raw.items()}
    det_names = [k for k in trainer.loss_names if k not in trainer.kd.names]
    det = sum(weighted[k] for k in det_names)
    levels = len(peaks[0]) // 2 if peaks else 0
    mean_peaks = [sum(p[i] for p in peaks) / len(peaks) for i in range(2 * levels)]
    return {
        "batches": n,
        "imgsz": o.imgsz,
        "raw": raw,
        "weighted": weighted,
        "detection_total": det,
        "distill_total": sum(v for k, v in weighted.items() if k not in det_names),
        "attention_peak": {
            f"stride{s}": {"spatial": mean_peaks[2 * i], "channel": mean_peaks[2 * i + 1]}
            for i, s in enumerate(trainer.model.strides[:levels])
        },
    }
