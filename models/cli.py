"""Torch-side ``lineinspect`` commands (entry-point group ``lineinspect.commands``):
``train``, ``val``, ``export``, ``anchors`` and ``distil`` (issue 4)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

log = logging.getLogger(__name__)
# LIDD-Net variants (models/detectors/lidd.py; listed here so that --help imports no torch)
LIDD_ARCHS = ["lidd-net", "lidd-base", "lidd-latm", "lidd-cisb", "lidd-tiny"]


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@click.command()
@click.option(
    "--data", required=True, type=click.Path(exists=True, dir_okay=False), help="data.yaml"
)
@click.option(
    "--arch",
    type=click.Choice(["t-model", "s-model", "tiny", *LIDD_ARCHS]),
    default="s-model",
    help="lidd-*: LIDD-Net and its ablation rows (docs/models.md; a GFL head served as "
    "anchor_free: pass --head anchor_free)",
)
@click.option("--epochs", type=int, default=100, show_default=True)
@click.option("--imgsz", type=int, default=224, show_default=True)
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="run directory")
@click.option("--resume", is_flag=True, help="continue from OUT/last.pt if it exists")
@click.option(
    "--head",
    type=click.Choice(["anchor_based", "anchor_free"]),
    default="anchor_based",
    show_default=True,
    help="anchor_based: YOLOv5 decoding with k-means anchors (the better on NEU-DET, "
    "docs/models.md); anchor_free: YOLOX decoding with task-aligned assignment",
)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--weight-decay", type=float, default=0.05, show_default=True)
@click.option("--warmup-epochs", type=float, default=3.0, show_default=True)
@click.option("--close-mosaic", type=int, default=15, show_default=True)
@click.option("--mosaic", "mosaic_prob", type=float, default=1.0, show_default=True)
@click.option("--eval-interval", type=int, default=5, show_default=True)
@click.option("--val-fraction", type=float, default=0.15, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--split-seed",
    type=int,
    default=None,
    help="seed of the validation carve-out (default: --seed); keep it fixed to compare "
    "training seeds, and equal to the teacher's when distilling",
)
@click.option("--threads", type=int, default=2, show_default=True, help="torch CPU threads")
@click.option("--workers", type=int, default=1, show_default=True, help="data loader workers")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1")
@click.option("--no-adaptive", is_flag=True, help="disable the eq. 18 loss-weight updater")
@click.option(
    "--init-from",
    default="",
    help="warm start from a checkpoint or a registry ref with a model.pt (e.g. "
    "neu-det-student): its architecture and weights, a fresh optimizer and schedule",
)
def train(**kw: Any) -> None:
    """Train a T-model or S-model detector."""
    from models.train.options import TrainOptions
    from models.train.trainer import Trainer

    _logging()
    adaptive = not kw.pop("no_adaptive")
    opts = TrainOptions(**kw, adaptive_weights=adaptive)
    try:
        trainer = Trainer(opts)  # bad data, --init-from or options: one line, no traceback
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    best = trainer.fit()
    click.echo(json.dumps({"out": opts.out, "best": _brief(best)}, indent=2))


def _brief(m: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("epoch", "map50", "map50_95", "precision", "recall", "f1")
    return {k: m[k] for k in keys if m and k in m}


@click.command()
@click.argument("ckpt", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="data.yaml (default: the checkpoint's, same seeded validation carve-out)",
)
@click.option("--val-fraction", type=float, default=None, help="carve-out (default: ckpt's, 0.15)")
@click.option("--seed", type=int, default=None, help="carve-out seed (default: ckpt's, 0)")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--conf", type=float, default=0.25, show_default=True, help="P/R/F1 threshold")
@click.option("--no-onnx", is_flag=True, help="skip ONNX Runtime throughput")
@click.option("--json-out", type=click.Path(dir_okay=False), default=None)
def val(
    ckpt: str, data: str | None, val_fraction: float | None, seed: int | None, threads: int,
    conf: float, no_onnx: bool, json_out: str | None,
) -> None:  # fmt: skip
    """Evaluate a checkpoint (.pt) or an exported model (.onnx, e.g. a registry version's
    model.onnx; needs --data): mAP, per-class AP, P/R/F1, ORT throughput, and for
    checkpoints params and GFLOPs."""
    _logging()
    if ckpt.endswith(".onnx"):
        if data is None:
            raise click.UsageError("--data is required to evaluate an .onnx model")
        report = _val_onnx(ckpt, data, val_fraction, seed, threads, conf, no_onnx)
    else:
        report = _val_checkpoint(ckpt, data, val_fraction, seed, threads, conf, no_onnx)
    text = json.dumps(report, indent=2, default=float)
    if json_out:
        Path(json_out).write_text(text)
    click.echo(text)


def evaluate_checkpoint(
    ck: dict[str, Any], model: Any, data: str | None = None, val_fraction: float | None = None,
    seed: int | None = None, conf: float = 0.25,
) -> dict[str, Any]:  # fmt: skip
    """mAP, per-class AP and P/R/F1 of a loaded checkpoint on its own seeded validation
    carve-out (or ``data``'s), through the serving post-processing at its NMS default.
    ``val`` prints it; ``export`` writes it into the card, so a card always holds the
    current evaluation rather than whatever the training run measured."""
    from models.processing import DEFAULT_IOU_THRESHOLD, ModelSpec
    from models.train import data_bridge
    from models.train.predict import detect

    spec = ModelSpec.from_json(ck["spec"])
    o = ck["opts"]
    frac = o["val_fraction"] if val_fraction is None else val_fraction
    _, val_samples, names = data_bridge.splits(
        data or o["data"], frac, data_bridge.carve_out_seed(o) if seed is None else seed
    )
    images, sizes = data_bridge.load_eval_images(val_samples, spec.imgsz)
    dets = detect(model, spec, images, conf_thr=0.001, orig_sizes=sizes)
    report: dict[str, Any] = data_bridge.evaluate(val_samples, dets, names, conf)
    report["nms_iou"] = DEFAULT_IOU_THRESHOLD
    if "epoch" in ck:  # the checkpoint's completed epochs (0-based in the checkpoint)
        report["epoch"] = int(ck["epoch"]) + 1
    return report


def _val_checkpoint(
    ckpt: str, data: str | None, val_fraction: float | None, seed: int | None, threads: int,
    conf: float, no_onnx: bool,
) -> dict[str, Any]:  # fmt: skip
    import torch

    from models import export as ex
    from models.detectors import count_params
    from models.processing import ModelSpec
    from models.train.checkpoint import load_checkpoint, model_from_checkpoint

    torch.set_num_threads(threads)
    ck = load_checkpoint(ckpt)
    model = model_from_checkpoint(ck)
    spec = ModelSpec.from_json(ck["spec"])
    report = evaluate_checkpoint(ck, model, data, val_fraction, seed, conf)
    deployed = ex.deployed_model(model)  # as exported: folded, no training-only heads
    report["params"] = count_params(deployed)
    report["gflops"] = round(ex.gflops(deployed, spec.imgsz), 4)
    if not no_onnx:
        report.update(_throughput(ex.temp_onnx(model, spec), spec.imgsz, threads))
    return report


def _val_onnx(
    path: str, data: str, val_fraction: float | None, seed: int | None, threads: int,
    conf: float, no_onnx: bool,
) -> dict[str, Any]:  # fmt: skip
    import onnx

    from models import export as ex
    from models.processing import DEFAULT_IOU_THRESHOLD, SPEC_METADATA_KEY, ModelSpec
    from models.train import data_bridge

    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    if SPEC_METADATA_KEY not in meta:
        raise click.ClickException(f"{path} has no '{SPEC_METADATA_KEY}' metadata")
    spec = ModelSpec.from_json(meta[SPEC_METADATA_KEY])
    frac = 0.15 if val_fraction is None else val_fraction
    _, val_samples, names = data_bridge.splits(data, frac, 0 if seed is None else seed)
    session = ex.ort_session(path, threads)
    dets = []
    for i in range(0, len(val_samples), 16):
        images, sizes = data_bridge.load_eval_images(val_samples[i : i + 16], spec.imgsz)
        dets.extend(ex.ort_detect(session, spec, images, conf_thr=0.001, orig_sizes=sizes)[1])
    report: dict[str, Any] = data_bridge.evaluate(val_samples, dets, names, conf)
    report["nms_iou"] = DEFAULT_IOU_THRESHOLD
    if not no_onnx:
        report.update(_throughput(path, spec.imgsz, threads))
    return report


def _throughput(onnx_path: str | Path, imgsz: int, threads: int) -> dict[str, float]:
    """ONNX Runtime CPU images/s at batch 1 and 8 (the ``ort_cpu_img_s_b*`` report keys)."""
    from models import export as ex

    return {
        f"ort_cpu_img_s_b{b}": round(ex.ort_throughput(onnx_path, imgsz, b, threads), 1)
        for b in (1, 8)
    }


@click.command()
@click.argument("ckpt", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--opset", type=int, default=17, show_default=True)
@click.option(
    "--weights/--no-weights",
    default=True,
    show_default=True,
    help="also write OUT/model.pt: the slim float16 torch weights (teachers for distil, "
    "train --init-from in a later session)",
)
@click.option(
    "--score-threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="the card's recommended score threshold (default: the F1-optimal one of the "
    "checkpoint's evaluation, re-run at export; `lineinspect val` prints it as best_f1)",
)
def export(ckpt: str, out: str, opset: int, weights: bool, score_threshold: float | None) -> None:
    """Export a checkpoint to OUT/model.onnx + OUT/card.json (with a parity check)."""
    from models import export as ex
    from models.train import data_bridge
    from models.train.checkpoint import load_checkpoint, model_from_checkpoint

    _logging()
    if opset < 17:
        raise click.BadParameter("opset must be >= 17", param_hint="--opset")
    ck = load_checkpoint(ckpt)
    model = model_from_checkpoint(ck)
    images = data_bridge.parity_images(ck["opts"], n=4)
    try:
        metrics: dict[str, Any] | None = evaluate_checkpoint(ck, model)
    except Exception as exc:  # data not on this machine: keep the run's own evaluation
        log.warning("cannot re-evaluate %s (%s); the card keeps its training metrics", ckpt, exc)
        metrics = None
    try:
        card = ex.export_checkpoint(
            ck, model, out, images, opset, weights=weights, score_threshold=score_threshold,
            metrics=metrics,
        )  # fmt: skip
    except ex.ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(card, indent=2))


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--k", type=int, default=9, show_default=True)
@click.option("--imgsz", type=int, default=224, show_default=True)
@click.option("--levels", type=int, default=3, show_default=True)
def anchors(data: str, k: int, imgsz: int, levels: int) -> None:
    """K-means++ (1 - IoU) anchors for the anchor-based head."""
    from models.anchors import anchors_report

    click.echo(json.dumps(anchors_report(data, k, imgsz, levels), indent=2))
