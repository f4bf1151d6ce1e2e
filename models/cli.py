"""Torch-side ``lineinspect`` commands (entry-point group ``lineinspect.commands``):
``train``, ``val``, ``export``, ``anchors`` and ``distil``."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from models.registry import BUNDLED_ROOT, ROOT_PROVIDER_KEY
from models.train.options import Cli, TrainOptions, default

log = logging.getLogger(__name__)


def registry_root(explicit: str | Path | None = None) -> Path:
    """The registry a training command reads: ``explicit`` (its ``--registry``), else the
    root the ``lineinspect`` command configured (its settings), else the bundled one."""
    if explicit:
        return Path(explicit)
    ctx = click.get_current_context(silent=True)
    provider = ctx.meta.get(ROOT_PROVIDER_KEY) if ctx is not None else None
    return Path(provider()) if provider is not None else BUNDLED_ROOT


def setup_logging() -> None:
    """INFO logging to stderr, the format every training command uses."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def train_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every :class:`TrainOptions` command-line option, in
    declaration order (``train``; ``distil`` adds its own)."""
    for f in reversed(dataclasses.fields(TrainOptions)):
        cli: Cli | None = f.metadata.get("cli")
        if cli is not None:
            command = click.option(*_option_decls(f.name, cli), **_option_attrs(f, cli))(command)
    return command


def _option_decls(name: str, cli: Cli) -> tuple[str, ...]:
    flag = cli.flag or "--" + name.replace("_", "-")
    return (flag,) if cli.negates or flag == "--" + name.replace("_", "-") else (flag, name)


def _option_attrs(f: dataclasses.Field[Any], cli: Cli) -> dict[str, Any]:
    attrs: dict[str, Any] = {"help": cli.help}
    if cli.negates or f.type in ("bool", bool):
        return {**attrs, "is_flag": True}
    if cli.required:
        attrs["required"] = True
    else:
        attrs["default"] = f.default
        attrs["show_default"] = cli.show_default
    if cli.choices:
        attrs["type"] = click.Choice(list(cli.choices))
    elif cli.file:
        attrs["type"] = click.Path(exists=True, dir_okay=False)
    elif cli.directory:
        attrs["type"] = click.Path(file_okay=False)
    else:
        attrs["type"] = _TYPES[str(f.type).removesuffix(" | None")]
    return attrs


_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str}


@click.command()
@train_options
def train(**kw: Any) -> None:
    """Train a T-model or S-model detector."""
    from models.train.distributed import finish
    from models.train.trainer import Trainer

    setup_logging()
    opts = TrainOptions.from_cli(kw)
    try:
        # bad data, --init-from or options: one line, no traceback
        root = registry_root() if opts.init_from else BUNDLED_ROOT
        trainer = Trainer(opts, registry_root=root)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    best = trainer.fit()
    finish(trainer.dist)
    if trainer.dist.main:  # under torchrun: once
        click.echo(json.dumps({"out": opts.out, "best": brief(best)}, indent=2))


def brief(m: dict[str, Any] | None) -> dict[str, Any]:
    """The headline metrics of a run's best evaluation, as the commands print them."""
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
@click.option(
    "--val-fraction",
    type=float,
    default=None,
    help=f"carve-out (default: ckpt's, {default('val_fraction')})",
)
@click.option(
    "--seed", type=int, default=None, help=f"carve-out seed (default: ckpt's, {default('seed')})"
)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--conf", type=float, default=0.25, show_default=True, help="P/R/F1 threshold")
@click.option("--no-onnx", is_flag=True, help="skip ONNX Runtime throughput")
@click.option("--json-out", type=click.Path(dir_okay=False), default=None)
def val(
    ckpt: str,
    data: str | None,
    val_fraction: float | None,
    seed: int | None,
    threads: int,
    conf: float,
    no_onnx: bool,
    json_out: str | None,
) -> None:
    """Evaluate a checkpoint (.pt) or an exported model (.onnx, e.g. a registry version's
    model.onnx; needs --data): mAP, per-class AP, P/R/F1, ORT throughput, and for
    checkpoints params and GFLOPs."""
    setup_logging()
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


def _val_checkpoint(
    ckpt: str,
    data: str | None,
    val_fraction: float | None,
    seed: int | None,
    threads: int,
    conf: float,
    no_onnx: bool,
) -> dict[str, Any]:
    import torch

    from models import export as ex
    from models.detectors import count_params
    from models.evaluate import evaluate_checkpoint
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
    path: str,
    data: str,
    val_fraction: float | None,
    seed: int | None,
    threads: int,
    conf: float,
    no_onnx: bool,
) -> dict[str, Any]:
    import onnx

    from models import export as ex
    from models.data import load_splits
    from models.evaluate import evaluation_report, load_eval_images
    from models.processing import DEFAULT_IOU_THRESHOLD, SPEC_METADATA_KEY, ModelSpec

    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    if SPEC_METADATA_KEY not in meta:
        raise click.ClickException(f"{path} has no '{SPEC_METADATA_KEY}' metadata")
    spec = ModelSpec.from_json(meta[SPEC_METADATA_KEY])
    frac = default("val_fraction") if val_fraction is None else val_fraction
    _, val_samples, names = load_splits(data, frac, default("seed") if seed is None else seed)
    session = ex.ort_session(path, threads)
    dets = []
    for i in range(0, len(val_samples), 16):
        images, sizes = load_eval_images(val_samples[i : i + 16], spec.imgsz)
        dets.extend(ex.ort_detect(session, spec, images, conf_thr=0.001, orig_sizes=sizes)[1])
    report = evaluation_report(val_samples, dets, names, conf)
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
    "train --init-from)",
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
    from models.evaluate import evaluate_checkpoint
    from models.train.checkpoint import load_checkpoint, model_from_checkpoint

    setup_logging()
    if opset < 17:
        raise click.BadParameter("opset must be >= 17", param_hint="--opset")
    ck = load_checkpoint(ckpt)
    model = model_from_checkpoint(ck)
    images = ex.parity_images(ck["opts"], n=4)
    try:
        metrics: dict[str, Any] | None = evaluate_checkpoint(ck, model)
    except Exception as exc:  # data not on this machine: keep the run's own evaluation
        log.warning("cannot re-evaluate %s (%s); the card keeps its training metrics", ckpt, exc)
        metrics = None
    try:
        card = ex.export_checkpoint(
            ck,
            model,
            out,
            images,
            opset,
            weights=weights,
            score_threshold=score_threshold,
            metrics=metrics,
        )
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
