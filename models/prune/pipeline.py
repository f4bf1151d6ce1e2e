"""The compression pipeline: sparse training -> channel pruning -> layer pruning ->
KD fine-tuning -> export (parity-checked) -> optional registration.

:func:`run_prune` is the entry point for both ``lineinspect prune`` and a ``prune`` job of
a training worker: it takes a :class:`PruneOptions` (or a plain dict of its fields, see
:meth:`PruneOptions.from_params`) and an optional progress callback
``progress(stage, fraction, info)``. Every stage leaves its result under ``out``
(``sparse/``, ``pruned.pt``, ``finetune/``, ``export/``), so ``resume`` continues where a
stopped run left off.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models import export as ex
from models.detectors import count_params
from models.prune.channels import prune_channels
from models.prune.layers import remove_blocks, weakest_blocks
from models.prune.structure import structure_diff
from models.prune.trainers import FinetuneTrainer, Progress, SparseTrainer
from models.registry import BUNDLED_ROOT
from models.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from models.train.options import TrainOptions
from models.weights import resolve_weights

log = logging.getLogger(__name__)

PRUNING_FIELDS = (
    "source",
    "ratio",
    "layers",
    "sparsity_lambda",
    "sparse_epochs",
    "finetune_epochs",
    "params_before",
    "params_after",
    "gflops_before",
    "gflops_after",
    "removed_blocks",
    "channels",
    "teacher",
)


@dataclass
class PruneOptions:
    """All knobs of one compression run (the ``prune`` job's parameters)."""

    source: str  # registry ref (name[@alias|:version]) or checkpoint of the model to compress
    data: str
    out: str
    ratio: float = 0.5  # share of the prunable channels removed (global, by |gamma|)
    layers: int = 0  # residual C3 bottlenecks removed whole (smallest mean |gamma|)
    teacher: str = ""  # KD teacher ref; "" = the unpruned source model
    sparsity: float = 1e-3  # lambda of the L1 term on gamma (constant)
    sparse_epochs: int = 30
    finetune_epochs: int = 30
    sparse_lr: float = 1e-3
    finetune_lr: float = 1e-3
    max_ratio: float = 0.9  # no layer loses more than this share of its channels
    imgsz: int = 224
    batch: int = 16
    seed: int = 0
    split_seed: int | None = None
    val_fraction: float = 0.15
    threads: int = 2
    workers: int = 1
    device: str = "auto"
    eval_interval: int = 5
    close_mosaic: int = 5
    max_iters_per_epoch: int = 0  # tests only
    bench_seconds: float = 3.0  # ORT timing per model and batch size (and round)
    resume: bool = False
    register: str = ""  # registry model name to register the export under ("" = do not)
    registry: str = ""  # registry root of --from, --teacher and --register ("" = bundled)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PruneOptions:
        """From a job's parameter dict; unknown keys are an error (a typo is not ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"unknown prune parameters {unknown}")
        return cls(**params)


def _train_options(o: PruneOptions, src: dict[str, Any], **kw: Any) -> TrainOptions:
    so = src.get("opts") or {}
    return TrainOptions(
        data=o.data,
        arch=so.get("arch", "s-model"),
        head=src["model_args"]["head"],
        imgsz=o.imgsz,
        batch=o.batch,
        seed=o.seed,
        split_seed=o.split_seed,
        val_fraction=o.val_fraction,
        threads=o.threads,
        workers=o.workers,
        device=o.device,
        eval_interval=o.eval_interval,
        close_mosaic=o.close_mosaic,
        resume=o.resume,
        max_iters_per_epoch=o.max_iters_per_epoch,
        warmup_epochs=0.5,
        **kw,
    )


def run_prune(
    opts: PruneOptions | dict[str, Any], progress: Progress | None = None
) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; returns the exported card."""
    o = opts if isinstance(opts, PruneOptions) else PruneOptions.from_params(opts)
    out = Path(o.out)
    if out.exists() and any(out.iterdir()) and not o.resume:
        raise ValueError(f"{out} is not empty: pass --resume to continue that run")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, o.threads))
    root = Path(o.registry) if o.registry else BUNDLED_ROOT
    src_path, src_record = resolve_weights(o.source, root)
    src = load_checkpoint(src_path)
    report = progress or (lambda stage, frac, info: None)

    # 1. sparse training
    sparse_ck = src
    if o.sparse_epochs > 0:
        topts = _train_options(
            o,
            src,
            epochs=o.sparse_epochs,
            lr=o.sparse_lr,
            out=str(out / "sparse"),
            init_from=str(src_path),
            ema_decay=0.99,
        )
        SparseTrainer(topts, o.sparsity, progress).fit()
        sparse_ck = load_checkpoint(out / "sparse" / "last.pt")
    report("sparse", 1.0, {})

    # 2-3. channel and layer pruning
    pruned_path = out / "pruned.pt"
    if not (o.resume and pruned_path.exists()):
        pruned = prune_checkpoint(src, sparse_ck, o, src_record)
        save_checkpoint(pruned_path, pruned)
        log.info("pruned: %s", json.dumps(pruned["pruning"]))
    pruned = load_checkpoint(pruned_path)
    report("prune", 1.0, pruned["pruning"])

    # 4. KD fine-tuning
    final = pruned_path
    if o.finetune_epochs > 0:
        from models.distill.loss import DistillConfig
        from models.distill.teacher import load_teacher

        teacher = load_teacher(o.teacher or str(src_path), root)
        if not o.teacher:
            teacher.parent.update({k: v for k, v in src_record.items() if k != "checkpoint"})
        topts = _train_options(
            o,
            src,
            epochs=o.finetune_epochs,
            lr=o.finetune_lr,
            out=str(out / "finetune"),
            init_from=str(pruned_path),
        )
        cfg = DistillConfig(feature_kd=False, response_kd=True)
        FinetuneTrainer(topts, teacher, cfg, pruned["pruning"], progress).fit()
        final = out / "finetune" / "best.pt"
    report("finetune", 1.0, {})

    # 5. export with parity, and the speed of both models measured side by side
    card = export_pruned(final, src, out / "export", o.threads, o.bench_seconds)
    report("export", 1.0, {"card": str(out / "export" / "card.json")})

    # 6. registration (through the serving CLI: models/ does not import service/)
    if o.register:
        cmd = [
            str(Path(sys.executable).parent / "lineinspect"),
            "models",
            "register",
            str(out / "export"),
            "--name",
            o.register,
        ]
        if o.registry:
            cmd += ["--registry", o.registry]
        subprocess.run(cmd, check=True)
        report("register", 1.0, {"name": o.register})
    return card


def prune_checkpoint(
    src: dict[str, Any], sparse_ck: dict[str, Any], o: PruneOptions, src_record: dict[str, Any]
) -> dict[str, Any]:
    """Channel- then layer-prune the (EMA) model of ``sparse_ck``: a slim checkpoint with
    the pruned weights, its ``structure`` and the ``pruning`` record."""
    from models.evaluate import evaluate_checkpoint

    imgsz = int(src["imgsz"])
    before = model_from_checkpoint(src)
    model = model_from_checkpoint(sparse_ck)
    channels = prune_channels(model, imgsz, o.ratio, o.max_ratio)
    removed = remove_blocks(model, weakest_blocks(model, o.layers)) if o.layers else []
    model.eval()
    with torch.no_grad():
        model(torch.zeros(2, 3, imgsz, imgsz))  # the pruned graph runs
    record = {
        "source": {k: v for k, v in src_record.items() if k != "checkpoint"} | {"ref": o.source},
        "ratio": o.ratio,
        "layers": o.layers,
        "sparsity_lambda": o.sparsity if o.sparse_epochs > 0 else 0.0,
        "sparse_epochs": o.sparse_epochs,
        "finetune_epochs": o.finetune_epochs,
        "params_before": count_params(before),
        "params_after": count_params(model),
        "gflops_before": round(ex.gflops(before, imgsz), 4),
        "gflops_after": round(ex.gflops(model, imgsz), 4),
        "removed_blocks": removed,
        "channels": channels,
        "teacher": None,
    }
    keep = ("model_args", "class_names", "imgsz", "spec", "opts", "data_fingerprint")
    ck: dict[str, Any] = {k: sparse_ck[k] for k in keep if k in sparse_ck}
    ck["opts"] = dict(
        ck.get("opts") or {},
        data=o.data,
        val_fraction=o.val_fraction,
        seed=o.seed,
        split_seed=o.split_seed,
    )
    ck.update(model=model.state_dict(), structure=structure_diff(model), pruning=record)
    ck["metrics"] = evaluate_checkpoint(ck, model_from_checkpoint(ck))
    ck["best_metrics"] = ck["metrics"]
    return ck


def export_pruned(
    ckpt_path: Path, src: dict[str, Any], out_dir: Path, threads: int, seconds: float = 3.0
) -> dict[str, Any]:
    """Export (ONNX + parity + card + model.pt) the final checkpoint; the card's
    ``pruning`` gains ORT CPU img/s at batch 1 and 8 of the source and the pruned model,
    measured interleaved in one run."""
    from models.evaluate import evaluate_checkpoint
    from models.processing import ModelSpec

    ck = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(ck)
    metrics = evaluate_checkpoint(ck, model)
    images = ex.parity_images(ck["opts"], n=4)
    card = ex.export_checkpoint(ck, model, out_dir, images, weights=True, metrics=metrics)
    spec = ModelSpec.from_json(src["spec"])
    src_onnx = ex.temp_onnx(model_from_checkpoint(src), spec)
    card["pruning"]["throughput"] = compare_throughput(
        {"source": src_onnx, "pruned": out_dir / "model.onnx"}, spec.imgsz, threads, seconds
    )
    (out_dir / "card.json").write_text(json.dumps(card, indent=2))
    return card


def compare_throughput(
    models: dict[str, Path], imgsz: int, threads: int, seconds: float = 3.0, rounds: int = 3
) -> dict[str, Any]:
    """ORT CPU img/s at batch 1 and 8 per model, best of ``rounds`` interleaved rounds
    (interleaving shares the machine's load between the models), and the speed-ups."""
    best: dict[str, dict[int, float]] = {k: {1: 0.0, 8: 0.0} for k in models}
    for _ in range(rounds):
        for name, path in models.items():
            for b in (1, 8):
                best[name][b] = max(
                    best[name][b], ex.ort_throughput(path, imgsz, b, threads, seconds)
                )
    res: dict[str, Any] = {
        name: {f"ort_cpu_img_s_b{b}": round(v, 1) for b, v in d.items()} for name, d in best.items()
    }
    if "source" in best and "pruned" in best:
        res["speedup"] = {
            f"b{b}": round(best["pruned"][b] / max(best["source"][b], 1e-9), 2) for b in (1, 8)
        }
    res["threads"] = threads
    return res
