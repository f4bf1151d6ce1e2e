"""The trainer's only contact with models.data / models.evaluate / models.anchors
(owned elsewhere): one place to adapt if their signatures move."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.processing import Detections, decode_scaled


def splits(
    data_yaml: str, val_fraction: float, seed: int
) -> tuple[list[Any], list[Any], list[str]]:
    """Training samples, the seeded per-class validation carve-out, and class names."""
    from models.data import load_data_config, load_splits

    train, val, names = load_splits(load_data_config(data_yaml), val_fraction, seed)
    return list(train), list(val), list(names)


def carve_out_seed(opts: dict[str, Any]) -> int:
    """The validation carve-out seed of training options as stored in checkpoints
    (``TrainOptions.to_dict()``): ``split_seed``, else ``seed`` (checkpoints from before
    ``split_seed`` have only ``seed``)."""
    split = opts.get("split_seed")
    return int(opts.get("seed", 0) if split is None else split)


def fingerprint(samples: Sequence[Any]) -> str:
    """Fingerprint of the training data (stored in checkpoints and cards)."""
    from models.data import fingerprint as fp

    return str(fp(list(samples)))


def dataset(
    samples: Sequence[Any],
    imgsz: int,
    mosaic_prob: float,
    cache: bool,
    close_mosaic: int,
    seed: int,
    augment: bool = True,
) -> Any:
    """The training dataset (mosaic closed for the last ``close_mosaic`` epochs)."""
    from models.data import DetectionDataset

    return DetectionDataset(
        list(samples),
        imgsz,
        augment=augment,
        mosaic_prob=mosaic_prob,
        cache=cache,
        close_mosaic=close_mosaic,
        seed=seed,
    )


def set_epoch(ds: Any, epoch: int, total: int) -> None:
    """Seed augmentation/shuffle for ``epoch`` and switch mosaic off near the end."""
    ds.set_epoch(epoch, total)


def loader(ds: Any, batch: int, workers: int, seed: int) -> Any:
    """Epoch-seeded shuffled loader (exact resume: the order depends on (seed, epoch) only)."""
    from models.data import build_loader

    return build_loader(
        ds, batch, shuffle=True, workers=workers, seed=seed, drop_last=len(ds) > batch
    )


def load_image(sample: Any) -> np.ndarray:
    """Original image of a sample as RGB uint8, full size."""
    from models.data import load_rgb

    return load_rgb(sample.image_path)


def load_eval_images(
    samples: Sequence[Any], imgsz: int
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Samples' images decoded exactly as the server decodes a frame for an ``imgsz``
    model (a large JPEG at a reduced DCT scale), with each frame's (width, height): what
    evaluation feeds :func:`models.train.predict.detect`, so the accuracy measured is the
    accuracy served."""
    decoded = [decode_scaled(Path(s.image_path).read_bytes(), fit=imgsz) for s in samples]
    return [img for img, _ in decoded], [size for _, size in decoded]


def evaluate(
    samples: Sequence[Any],
    dets: Sequence[Detections],
    names: Sequence[str],
    score_thr: float = 0.25,
) -> dict[str, Any]:
    """pycocotools mAP@.5 / mAP@.5:.95, per-class AP, P/R/F1 at ``score_thr``, and the
    F1-optimal score threshold (``best_f1``)."""
    from models.evaluate import best_f1_threshold, evaluate_detections

    res = evaluate_detections(list(samples), list(dets), list(names), score_thr=score_thr)
    out = dict(res.to_dict())
    out["map50"], out["map50_95"] = float(res.map50), float(res.map50_95)
    out["best_f1"] = best_f1_threshold(list(samples), list(dets), len(names))
    return out


def anchors(
    samples: Sequence[Any], imgsz: int, levels: int, per_level: int = 3, seed: int = 0
) -> list[list[list[float]]]:
    """K-means++ (1 - IoU) anchors in input pixels, one set of ``per_level`` per level."""
    from models.anchors import kmeans_anchors, split_levels, wh_from_samples

    wh = wh_from_samples(list(samples), imgsz)
    return split_levels(kmeans_anchors(wh, levels * per_level, seed=seed), levels)


def parity_images(opts: dict[str, Any], n: int = 4) -> list[np.ndarray]:
    """A few validation images of the checkpoint's data for the export parity check."""
    try:
        _, val, _ = splits(opts["data"], opts["val_fraction"], carve_out_seed(opts))
    except Exception:  # data not on this machine: synthetic images only
        return []
    return [load_image(s) for s in val[:n]]
