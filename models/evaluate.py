"""COCO-style detection evaluation with pycocotools (the reference mAP implementation).

Ground truth and detections are built in memory from samples and per-image predictions
(any objects with ``.boxes [K,4]`` xyxy original pixels, ``.scores [K]``, ``.class_ids [K]``,
e.g. ``models.processing.Detections``). mAP numbers come from ``COCOeval``'s precision
array (area ``all``, 100 detections per image); precision/recall/F1 at one score
threshold come from a greedy per-class match at IoU 0.5.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.data.formats.coco import samples_to_coco
from models.data.sample import Sample
from models.processing import DEFAULT_IOU_THRESHOLD, Detections, ModelSpec, decode_scaled
from models.processing.boxes import box_iou

if TYPE_CHECKING:  # the metrics above the checkpoint helpers stay torch-free
    from torch import nn

log = logging.getLogger(__name__)


class PredictionLike(Protocol):
    """What :func:`evaluate_detections` reads from a prediction (duck-typed)."""

    @property
    def boxes(self) -> np.ndarray: ...
    @property
    def scores(self) -> np.ndarray: ...
    @property
    def class_ids(self) -> np.ndarray: ...


@dataclass
class ClassMetrics:
    """Metrics of one class; APs are ``nan`` when the class has no ground truth."""

    ap50: float
    ap50_95: float
    precision: float
    recall: float
    f1: float
    num_gt: int
    num_pred: int


@dataclass
class EvalResult:
    """mAP@.5, mAP@.5:.95 (means over classes with ground truth) and P/R/F1 at ``score_thr``."""

    map50: float
    map50_95: float
    precision: float
    recall: float
    f1: float
    score_thr: float
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    num_images: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` → ``None``)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        return clean(asdict(self))  # type: ignore[no-any-return]


def _prf(tp: int, n_pred: int, n_gt: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gt if n_gt else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f1


def match_counts(
    samples: Sequence[Sample],
    predictions: Sequence[PredictionLike],
    num_classes: int,
    score_thr: float,
    iou_thr: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``(tp, n_pred, n_gt)`` from greedy matching (highest score first, best free GT)."""
    tp, n_pred, n_gt = (np.zeros(num_classes, np.int64) for _ in range(3))
    for s, p in zip(samples, predictions, strict=True):
        keep = np.asarray(p.scores) >= score_thr
        boxes, scores = (
            np.asarray(p.boxes, np.float32).reshape(-1, 4)[keep],
            np.asarray(p.scores)[keep],
        )
        cls = np.asarray(p.class_ids, np.int64)[keep]
        for c in range(num_classes):
            gt = s.boxes[s.labels == c]
            pb = boxes[cls == c][np.argsort(-scores[cls == c], kind="stable")]
            n_gt[c] += len(gt)
            n_pred[c] += len(pb)
            if not len(gt) or not len(pb):
                continue
            iou = box_iou(pb, gt)
            free = np.ones(len(gt), bool)
            for row in iou:
                cand = np.where(free, row, -1.0)
                j = int(cand.argmax())
                if cand[j] >= iou_thr:
                    free[j] = False
                    tp[c] += 1
    return tp, n_pred, n_gt


#: Score thresholds :func:`best_f1_threshold` tries: 0.05 to 0.95 in steps of 0.05.
F1_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def best_f1_threshold(
    samples: Sequence[Sample],
    predictions: Sequence[PredictionLike],
    num_classes: int,
    thresholds: Sequence[float] = F1_THRESHOLDS,
) -> dict[str, float]:
    """The score threshold (of ``thresholds``) with the best micro F1 over all classes, and
    its precision/recall/F1: what a line should start from, since a detector's score scale
    depends on its head and training (0.25 is nobody's optimum by definition)."""
    best = {"score_thr": float(thresholds[0]), "precision": 0.0, "recall": 0.0, "f1": -1.0}
    for thr in thresholds:
        tp, n_pred, n_gt = match_counts(samples, predictions, num_classes, thr)
        p, r, f1 = _prf(int(tp.sum()), int(n_pred.sum()), int(n_gt.sum()))
        if f1 > best["f1"]:
            best = {"score_thr": float(thr), "precision": p, "recall": r, "f1": f1}
    return best


def _coco_precision(
    samples: Sequence[Sample], predictions: Sequence[PredictionLike], names: Sequence[str]
) -> np.ndarray | None:
    """COCOeval's precision array ``[T,R,K,A,M]``, or ``None`` when there are no detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets = []
    for i, p in enumerate(predictions):
        for (x1, y1, x2, y2), sc, c in zip(
            np.asarray(p.boxes, np.float64).reshape(-1, 4),
            np.asarray(p.scores),
            np.asarray(p.class_ids),
            strict=True,
        ):
            dets.append(
                {
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(sc),
                }
            )
    if not dets:
        return None
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        gt = COCO()
        gt.dataset = samples_to_coco(samples, names)
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
    log.debug("pycocotools: %s", buf.getvalue().strip())
    return np.asarray(ev.eval["precision"])


def _ap(prec: np.ndarray) -> float:
    valid = prec[prec > -1]
    return float(valid.mean()) if valid.size else float("nan")


def evaluate_detections(
    samples: Sequence[Sample],
    predictions: Sequence[PredictionLike],
    class_names: Sequence[str],
    score_thr: float = 0.25,
) -> EvalResult:
    """Evaluate predictions (aligned with ``samples``) against their ground truth.

    mAP comes from ``COCOeval`` (IoU .50:.05:.95, area ``all``, maxDets 100); a class
    without ground truth has ``nan`` AP and is left out of the means, as in COCO. Feed
    predictions with a low score threshold (e.g. 0.001) for a faithful mAP; P/R/F1 only
    count predictions with ``score >= score_thr``.
    """
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    nc = len(class_names)
    prec = _coco_precision(samples, predictions, class_names)
    tp, n_pred, n_gt = match_counts(samples, predictions, nc, score_thr)
    per_class: dict[str, ClassMetrics] = {}
    ap50s, aps = [], []
    for c, name in enumerate(class_names):
        if n_gt[c] == 0:
            ap50 = ap = float("nan")
        elif prec is None:
            ap50 = ap = 0.0
        else:
            ap50, ap = _ap(prec[0, :, c, 0, -1]), _ap(prec[:, :, c, 0, -1])
            ap50, ap = (0.0 if math.isnan(ap50) else ap50), (0.0 if math.isnan(ap) else ap)
        if n_gt[c]:
            ap50s.append(ap50)
            aps.append(ap)
        p, r, f1 = _prf(int(tp[c]), int(n_pred[c]), int(n_gt[c]))
        per_class[name] = ClassMetrics(ap50, ap, p, r, f1, int(n_gt[c]), int(n_pred[c]))
    p, r, f1 = _prf(int(tp.sum()), int(n_pred.sum()), int(n_gt.sum()))
    return EvalResult(
        map50=float(np.mean(ap50s)) if ap50s else 0.0,
        map50_95=float(np.mean(aps)) if aps else 0.0,
        precision=p,
        recall=r,
        f1=f1,
        score_thr=score_thr,
        per_class=per_class,
        num_images=len(samples),
    )


def load_eval_images(
    samples: Sequence[Sample], imgsz: int
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Samples' images decoded exactly as the server decodes a frame for an ``imgsz``
    model (a large JPEG at a reduced DCT scale), with each frame's (width, height): what
    evaluation feeds :func:`models.train.predict.detect`, so the accuracy measured is the
    accuracy served."""
    decoded = [decode_scaled(Path(s.image_path).read_bytes(), fit=imgsz) for s in samples]
    return [img for img, _ in decoded], [size for _, size in decoded]


def evaluation_report(
    samples: Sequence[Sample],
    dets: Sequence[Detections],
    names: Sequence[str],
    score_thr: float = 0.25,
) -> dict[str, Any]:
    """pycocotools mAP@.5 / mAP@.5:.95, per-class AP, P/R/F1 at ``score_thr``, and the
    F1-optimal score threshold (``best_f1``), as a JSON-ready dict."""
    res = evaluate_detections(list(samples), list(dets), list(names), score_thr=score_thr)
    out = dict(res.to_dict())
    out["map50"], out["map50_95"] = float(res.map50), float(res.map50_95)
    out["best_f1"] = best_f1_threshold(list(samples), list(dets), len(names))
    return out


def evaluate_checkpoint(
    ck: dict[str, Any],
    model: nn.Module,
    data: str | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
    conf: float = 0.25,
) -> dict[str, Any]:
    """mAP, per-class AP and P/R/F1 of a loaded checkpoint on its own seeded validation
    carve-out (or ``data``'s), through the serving post-processing at its NMS default.
    ``val`` prints it; ``export`` writes it into the card, so a card always holds the
    current evaluation rather than whatever the training run measured."""
    from models.data import load_splits  # the checkpoint path alone needs torch
    from models.train.options import carve_out_seed
    from models.train.predict import detect

    spec = ModelSpec.from_json(ck["spec"])
    o = ck["opts"]
    frac = o["val_fraction"] if val_fraction is None else val_fraction
    _, val_samples, names = load_splits(
        data or o["data"], frac, carve_out_seed(o) if seed is None else seed
    )
    images, sizes = load_eval_images(val_samples, spec.imgsz)
    dets = detect(model, spec, images, conf_thr=0.001, orig_sizes=sizes)
    report = evaluation_report(val_samples, dets, names, conf)
    report["nms_iou"] = DEFAULT_IOU_THRESHOLD
    if "epoch" in ck:  # the checkpoint's completed epochs (0-based in the checkpoint)
        report["epoch"] = int(ck["epoch"]) + 1
    return report
