"""Run a torch detector through the shared pre/post-processing (models.processing), so
evaluation measures exactly what is served."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from models.detectors.decode import flatten_outputs
from models.processing import (
    DEFAULT_IOU_THRESHOLD,
    Detections,
    ModelSpec,
    postprocess,
    preprocess_batch,
)


@torch.no_grad()
def raw_outputs(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    """Model input ``[N,3,S,S]`` float32 → raw ``[N,A,5+C]`` float32 (contract layout)."""
    dev = next(model.parameters()).device
    outs = model(torch.from_numpy(batch).to(dev))
    return flatten_outputs(outs).float().cpu().numpy()


@torch.no_grad()
def detect(
    model: nn.Module,
    spec: ModelSpec,
    images: Sequence[np.ndarray],
    conf_thr: float = 0.001,
    iou_thr: float = DEFAULT_IOU_THRESHOLD,
    max_det: int = 100,
    batch_size: int = 16,
    orig_sizes: Sequence[tuple[int, int]] | None = None,
) -> list[Detections]:
    """Detect on RGB uint8 images (any size): letterbox, forward, ``postprocess``.

    ``orig_sizes``: the frames' (width, height) when ``images`` were decoded at a reduced
    scale as the server decodes them (:func:`models.evaluate.load_eval_images`);
    boxes are then in the frames' pixels."""
    was_training = model.training
    model.eval()
    out: list[Detections] = []
    for i in range(0, len(images), batch_size):
        chunk = images[i : i + batch_size]
        origs = orig_sizes[i : i + batch_size] if orig_sizes else None
        batch, infos = preprocess_batch(chunk, spec.imgsz, origs)
        raw = raw_outputs(model, batch)
        sizes = list(origs) if origs else [(im.shape[1], im.shape[0]) for im in chunk]
        out.extend(postprocess(raw, spec, infos, sizes, conf_thr, iou_thr, max_det))
    model.train(was_training)
    return out
