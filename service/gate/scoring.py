"""Score one served model on a golden set: the figures the gate compares.

Images are decoded and letterboxed as the server decodes a frame
(:func:`service.inspector.prepare`), run through an ONNX Runtime session built as
serving builds it (:class:`service.engine.ModelSession` with the serving settings), and
post-processed by the one served post-processing twice per batch: with every candidate
down to 0.001 for pycocotools mAP (as ``lineinspect val`` scores), and at the served
thresholds (the settings, then the card's ``class_thresholds`` and recommended
threshold) for the verdicts that give escape and false-reject rates.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydantic import BaseModel

from models.processing import PostprocessConfig, batch_inputs, postprocess, verdict
from models.processing.postprocess import Detections
from service.config import Settings
from service.engine import ModelSession, auto_intra_op_threads
from service.errors import ModelNotFound, RegistryError
from service.gate.escape import Rate, escape_rates, false_reject_rate
from service.gate.golden import GoldenSet
from service.inspector import prepare
from service.records import fail_class_ids
from service.registry import ModelVersion, Registry

#: Score threshold of the detections pycocotools ranks (``lineinspect val``'s).
EVAL_SCORE_THRESHOLD = 0.001
LATENCY_BATCHES = (1, 8)
LATENCY_RUNS = 20  # timed runs per batch size (after LATENCY_WARMUP untimed ones)
LATENCY_WARMUP = 3
EVAL_BATCH = 8


class RateFigure(BaseModel):
    """A rate with its counts (``rate`` is None without images)."""

    rate: float | None
    count: int
    total: int

    @classmethod
    def of(cls, r: Rate) -> RateFigure:
        """From a :class:`Rate`."""
        return cls(rate=r.rate, count=r.count, total=r.total)


class ModelScore(BaseModel):
    """One model's figures on one golden set."""

    model: str  # name:version, or the directory
    path: str
    map50: float
    map50_95: float
    per_class_ap50: dict[str, float | None]
    per_class_ap50_95: dict[str, float | None]
    thresholds: dict[str, float]  # the served per-class score thresholds
    fail_classes: list[str] | None  # None: every class fails a part
    escape: dict[str, RateFigure]
    false_reject: RateFigure
    latency_ms: dict[str, float]  # "b1", "b8": median ms per batch run
    latency_runs: int
    num_images: int


def resolve_model(ref: str, registry_root: Path) -> ModelVersion:
    """A registry reference (``name``, ``name@alias``, ``name:version``) or an ONNX version
    directory (``model.onnx`` + ``card.json``)."""
    path = Path(ref)
    if path.is_dir():
        if not (path / "model.onnx").is_file():
            raise ModelNotFound(f"{path} has no model.onnx")
        try:
            card = json.loads((path / "card.json").read_text())
        except FileNotFoundError:
            card = {}
        except ValueError as exc:
            raise RegistryError(f"{path}/card.json is not valid JSON: {exc}") from exc
        version = int(path.name) if path.name.isdigit() else 0
        name = str(card.get("name") or (path.parent.name if path.name.isdigit() else path.name))
        return ModelVersion(name=name, version=version, path=path.resolve(), card=card)
    return Registry(registry_root).resolve(ref)


def label(v: ModelVersion) -> str:
    """``name:version`` of a version (the directory for an unregistered one)."""
    return f"{v.name}:{v.version}" if v.version else str(v.path)


def open_session(v: ModelVersion, s: Settings) -> ModelSession:
    """An ONNX Runtime session with the serving session options."""
    intra = auto_intra_op_threads(s.intra_op_threads, s.inference_threads)
    return ModelSession(v, s.providers, intra, s.inter_op_threads, s.ort_spinning)


def served_postprocess(session: ModelSession, s: Settings) -> PostprocessConfig:
    """The thresholds serving applies to this model (as the model manager builds them)."""
    return PostprocessConfig.for_classes(
        session.spec.class_names,
        s.score_threshold,
        s.class_thresholds,
        s.iou_threshold,
        s.max_detections,
        card=session.version.card,
    )


def detect(
    session: ModelSession, golden: GoldenSet, post: PostprocessConfig, max_pixels: int
) -> tuple[list[Detections], list[Detections]]:
    """Per golden image: detections down to 0.001 and at the served thresholds."""
    spec = session.spec
    if tuple(spec.class_names) != golden.class_names:
        raise RegistryError(
            f"model {session.key} classes {list(spec.class_names)} differ from the golden "
            f"set's {list(golden.class_names)}"
        )
    low: list[Detections] = []
    served: list[Detections] = []
    samples = golden.samples
    for i in range(0, len(samples), EVAL_BATCH):
        prepared = [
            prepare(Path(x.image_path).read_bytes(), spec.imgsz, max_pixels)
            for x in samples[i : i + EVAL_BATCH]
        ]
        raw = session.run(batch_inputs([t for t, _, _ in prepared]))
        infos, sizes = [p[1] for p in prepared], [p[2] for p in prepared]
        low += postprocess(
            raw, spec, infos, sizes, EVAL_SCORE_THRESHOLD, post.iou_thr, post.max_det
        )
        served += postprocess(raw, spec, infos, sizes, post.conf_thr, post.iou_thr, post.max_det)
    return low, served


def max_scores(dets: Sequence[Detections], num_classes: int) -> np.ndarray:
    """``[N,C]``: each image's highest detection score per class (0 where none)."""
    out = np.zeros((len(dets), num_classes), np.float32)
    for i, d in enumerate(dets):
        if len(d):
            np.maximum.at(out[i], d.class_ids, d.scores)
    return out


def latencies(sessions: Sequence[ModelSession], runs: int = LATENCY_RUNS) -> list[dict[str, float]]:
    """Median ms of ``runs`` batch runs at each of :data:`LATENCY_BATCHES`, per session.

    Sessions take turns run by run, so machine load during the measurement falls on every
    model alike and the ratio of their medians is fair.
    """
    out: list[dict[str, float]] = [{} for _ in sessions]
    rng = np.random.default_rng(0)
    for b in LATENCY_BATCHES:
        inputs = [rng.random((b, 3, s.spec.imgsz, s.spec.imgsz), np.float32) for s in sessions]
        times: list[list[float]] = [[] for _ in sessions]
        for r in range(LATENCY_WARMUP + runs):
            for k, (s, x) in enumerate(zip(sessions, inputs, strict=True)):
                t0 = time.perf_counter()
                s.run(x)
                if r >= LATENCY_WARMUP:
                    times[k].append((time.perf_counter() - t0) * 1000)
        for k, t in enumerate(times):
            out[k][f"b{b}"] = round(statistics.median(t), 4)
    return out


def accuracy(
    session: ModelSession, golden: GoldenSet, s: Settings, latency: dict[str, float], runs: int
) -> ModelScore:
    """Every figure but the latency (given) of one model on the golden set."""
    from models.evaluate import evaluate_detections  # pycocotools: the training extra

    post = served_postprocess(session, s)
    low, served = detect(session, golden, post, s.max_pixels)
    names = golden.class_names
    preds = cast(list[Any], low)  # Detections is frozen: not the settable PredictionLike
    res = evaluate_detections(list(golden.samples), preds, list(names), score_thr=0.25)
    fail_ids = fail_class_ids(names, None if s.fail_classes is None else tuple(s.fail_classes))
    failed = np.array([verdict(d, fail_ids) == "fail" for d in served], bool)
    thr = np.broadcast_to(np.asarray(post.conf_thr, np.float32), (len(names),))
    escapes = escape_rates(golden.present, failed, names)

    def nan_none(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    return ModelScore(
        model=label(session.version),
        path=str(session.version.path),
        map50=res.map50,
        map50_95=res.map50_95,
        per_class_ap50={n: nan_none(m.ap50) for n, m in res.per_class.items()},
        per_class_ap50_95={n: nan_none(m.ap50_95) for n, m in res.per_class.items()},
        thresholds={n: round(float(t), 6) for n, t in zip(names, thr, strict=True)},
        fail_classes=None if s.fail_classes is None else list(s.fail_classes),
        escape={k: RateFigure.of(v) for k, v in escapes.items()},
        false_reject=RateFigure.of(false_reject_rate(golden.ok, failed)),
        latency_ms=latency,
        latency_runs=runs,
        num_images=len(golden.samples),
    )


def score(
    model: ModelVersion, golden: GoldenSet, settings: Settings, runs: int = LATENCY_RUNS
) -> ModelScore:
    """Score one model on the golden set (see the module docstring)."""
    session = open_session(model, settings)
    return accuracy(session, golden, settings, latencies([session], runs)[0], runs)
