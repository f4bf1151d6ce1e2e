"""ONNX export (contract layout, ModelSpec metadata), parity check through the shared
post-processing, ONNX Runtime throughput, GFLOPs, and the model card."""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models.data import load_rgb, load_splits
from models.detectors import Detector, count_params
from models.detectors.decode import flatten_outputs
from models.processing import (
    DEFAULT_IOU_THRESHOLD,
    SPEC_METADATA_KEY,
    Detections,
    ModelSpec,
    decode_predictions,
    postprocess,
    preprocess_batch,
)
from models.registry import sha256_file
from models.train.checkpoint import save_checkpoint, slim_checkpoint
from models.train.options import carve_out_seed
from models.train.predict import raw_outputs

log = logging.getLogger(__name__)
MAX_ONNX_BYTES = 15 * 1024 * 1024


class ExportError(RuntimeError):
    """Export failed or the exported model disagrees with the torch model."""


class ExportWrapper(nn.Module):
    """``images [N,3,S,S]`` → ``preds [N,A,5+C]`` (per-level outputs flattened, contract order)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return flatten_outputs(self.model(images))


def export_onnx(model: Detector, spec: ModelSpec, path: str | Path, opset: int = 17) -> Path:
    """Write ``model`` as ONNX (dynamic batch, input ``images``, output ``preds``) with the
    ``lineinspect.spec`` metadata entry."""
    import onnx

    path = Path(path)
    wrapper = ExportWrapper(model.cpu().eval()).eval()
    dummy = torch.zeros(2, 3, spec.imgsz, spec.imgsz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(path),
            input_names=["images"],
            output_names=["preds"],
            dynamic_axes={"images": {0: "batch"}, "preds": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_KEY, spec.to_json()
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ExportError(f"{path} is {size / 2**20:.1f} MiB, over the 15 MiB limit")
    return path


def ort_session(path: str | Path, threads: int = 2) -> Any:
    """A CPU ONNX Runtime session."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_detect(
    session: Any,
    spec: ModelSpec,
    images: Sequence[np.ndarray],
    conf_thr: float = 0.25,
    iou_thr: float = DEFAULT_IOU_THRESHOLD,
    orig_sizes: Sequence[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, list[Detections]]:
    """Run ONNX Runtime on images through ``preprocess_batch`` + ``postprocess``
    (``orig_sizes`` as in :func:`models.train.predict.detect`)."""
    batch, infos = preprocess_batch(images, spec.imgsz, orig_sizes)
    raw = session.run(["preds"], {"images": batch})[0]
    sizes = list(orig_sizes) if orig_sizes else [(im.shape[1], im.shape[0]) for im in images]
    return raw, postprocess(raw, spec, infos, sizes, conf_thr, iou_thr)


def _match(a: Detections, b: Detections, thr: float, margin: float) -> bool:
    """Every detection of ``a`` clearly above ``thr`` has a twin in ``b``."""
    for box, score, cls in zip(a.boxes, a.scores, a.class_ids, strict=True):
        if score < thr + margin:
            continue
        same = (b.class_ids == cls) & (np.abs(b.scores - score) < 2e-3)
        if not same.any():
            return False
        d = np.abs(b.boxes[same] - box).max(1)
        if d.min() > 0.5:
            return False
    return True


def check_parity(
    model: Detector,
    spec: ModelSpec,
    onnx_path: str | Path,
    images: Sequence[np.ndarray],
    conf_thr: float = 0.25,
) -> dict[str, float]:
    """Same detections from torch and ONNX Runtime after ``postprocess``; raises ExportError.

    Compared at ``conf_thr`` and at a threshold low enough to keep ~10 detections per
    image, so that the check is never vacuous (e.g. for a barely trained model).
    """
    batch, infos = preprocess_batch(list(images), spec.imgsz)
    sizes = [(im.shape[1], im.shape[0]) for im in images]
    raw_t = raw_outputs(model.cpu().eval(), batch)
    raw_o = ort_session(onnx_path).run(["preds"], {"images": batch})[0]
    max_diff = float(np.abs(raw_t - raw_o).max())
    _, scores = decode_predictions(raw_t, spec)
    best = np.sort(scores.max(-1).ravel())[::-1]
    low = float(best[min(len(best) - 1, 10 * len(images))]) * 0.999
    counts = []
    for thr in sorted({conf_thr, low}, reverse=True):
        det_t = postprocess(raw_t, spec, infos, sizes, thr, 0.5)
        det_o = postprocess(raw_o, spec, infos, sizes, thr, 0.5)
        margin = 0.01 * thr
        for t, o in zip(det_t, det_o, strict=True):
            if not (_match(t, o, thr, margin) and _match(o, t, thr, margin)):
                raise ExportError(f"ONNX/torch parity failed: detections differ at score {thr:.4g}")
        counts.append(sum(len(d) for d in det_t))
    if max_diff > 1e-2:
        raise ExportError(f"ONNX/torch parity failed: max raw output diff {max_diff:.2e}")
    return {
        "max_raw_diff": max_diff,
        "detections": float(counts[0]),
        "detections_low_thr": float(counts[-1]),
        "low_thr": low,
        "images": float(len(images)),
    }


def ort_throughput(
    path: str | Path, imgsz: int, batch: int, threads: int = 2, seconds: float = 3.0
) -> float:
    """Images per second of ONNX Runtime CPU at a given batch size."""
    sess = ort_session(path, threads)
    x = np.random.default_rng(0).random((batch, 3, imgsz, imgsz), dtype=np.float32)
    for _ in range(3):
        sess.run(["preds"], {"images": x})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        sess.run(["preds"], {"images": x})
        n += 1
    return n * batch / (time.perf_counter() - t0)


def gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs of one forward pass at batch 1 (torch.utils.flop_counter)."""
    model = model.cpu().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, 3, imgsz, imgsz))
    return fc.get_total_flops() / 1e9


def parity_images(opts: dict[str, Any], n: int = 4) -> list[np.ndarray]:
    """A few validation images of a checkpoint's data (its options ``opts``) for the
    parity check; none when the data is not on this machine (synthetic images only)."""
    try:
        _, val, _ = load_splits(opts["data"], opts["val_fraction"], carve_out_seed(opts))
    except Exception:
        return []
    return [load_rgb(s.image_path) for s in val[:n]]


def synthetic_images(n: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Grey noisy images of mixed sizes with bright/dark rectangles (parity inputs)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = (200, 200) if i % 2 == 0 else (180, 240)
        img = rng.normal(128, 20, (h, w)).clip(0, 255)
        for _ in range(3):
            x, y = rng.integers(0, w - 40), rng.integers(0, h - 40)
            img[y : y + rng.integers(10, 40), x : x + rng.integers(10, 40)] = rng.choice([30, 230])
        out.append(np.repeat(img.astype(np.uint8)[..., None], 3, 2))
    return out


def _card_metrics(m: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "map50",
        "map50_95",
        "precision",
        "recall",
        "f1",
        "score_thr",
        "epoch",
        "num_images",
        "nms_iou",
    )
    out: dict[str, Any] = {k: m[k] for k in keys if k in m}
    per = m.get("per_class") or {}
    out["per_class_ap50"] = {c: v.get("ap50") for c, v in per.items() if isinstance(v, dict)}
    if isinstance(m.get("best_f1"), dict):
        out["best_f1"] = m["best_f1"]
    out["evaluated_on"] = "validation carve-out of the training data"
    return out


def export_checkpoint(
    ckpt: dict[str, Any],
    model: Detector,
    out_dir: str | Path,
    parity_images: Sequence[np.ndarray] | None = None,
    opset: int = 17,
    weights: bool = False,
    score_threshold: float | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export a trained checkpoint to ``out_dir/model.onnx`` + ``out_dir/card.json``, and
    with ``weights`` the slim torch checkpoint ``out_dir/model.pt`` (registered with it).

    The card's metrics are ``metrics`` (a fresh evaluation) if given, else the
    checkpoint's own best evaluation. ``recommended_score_threshold`` (what the server
    applies unless configured otherwise) is ``score_threshold`` if given, else the
    F1-optimal threshold of those metrics when they have one."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = ModelSpec.from_json(ckpt["spec"])
    deployed = deployed_model(model)
    onnx_path = export_onnx(deployed, spec, out / "model.onnx", opset)  # type: ignore[arg-type]
    images = list(parity_images or []) + synthetic_images()
    parity = check_parity(model, spec, onnx_path, images)  # training graph vs exported
    arch = ckpt["opts"]["arch"]
    if metrics is None:
        metrics = ckpt.get("best_metrics") or ckpt.get("metrics") or {}
    card = {
        "role": "teacher" if arch == "t-model" else "student",
        "architecture": arch,
        "head": spec.head,
        "class_names": list(spec.class_names),
        "input_size": spec.imgsz,
        "data_fingerprint": ckpt.get("data_fingerprint"),
        "parent": ckpt.get("parent"),  # distilled students: their teacher (models/distill)
        "init_from": ckpt.get("init_from"),  # warm-started runs: the weights they began from
        "distillation": ckpt.get("distill"),  # distilled students: the KD terms and settings
        "pruning": ckpt.get("pruning"),  # pruned models (models/prune): source, R, K, lambda...
        "metrics": _card_metrics(metrics),
        "recommended_score_threshold": score_threshold
        if score_threshold is not None
        else (metrics.get("best_f1") or {}).get("score_thr"),
        "params": count_params(deployed),  # as deployed (folded, no training-only heads)
        "gflops": round(gflops(deployed, spec.imgsz), 4),
        "onnx_sha256": sha256_file(onnx_path),
        "opset": opset,
        "parity": parity,
    }
    if weights:
        save_checkpoint(out / "model.pt", slim_checkpoint(ckpt))
        card["weights_sha256"] = sha256_file(out / "model.pt")
    (out / "card.json").write_text(json.dumps(card, indent=2))
    return card


def deployed_model(model: nn.Module) -> nn.Module:
    """What is exported: ``model.deploy()`` for re-parameterised detectors (LIDD-Net:
    DO-Conv, RepGhost branches and conv+BN folded, training-only heads dropped), else
    ``model`` itself."""
    fn = getattr(model, "deploy", None)
    return fn() if callable(fn) else model


def temp_onnx(model: Detector, spec: ModelSpec) -> Path:
    """Export to a temporary file (for throughput measurements)."""
    d = Path(tempfile.mkdtemp(prefix="lineinspect-onnx-"))
    return export_onnx(deployed_model(model), spec, d / "model.onnx")  # type: ignore[arg-type]
