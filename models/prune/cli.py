"""``lineinspect prune``: compress a trained detector (sparse training, channel and layer
pruning, KD fine-tuning, export, optional registration). See docs/compression.md."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command()
@click.option(
    "--from",
    "source",
    required=True,
    help="model to compress: registry ref name[@alias|:version] or a checkpoint",
)
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--ratio",
    type=click.FloatRange(0, 1, max_open=True),
    required=True,
    help="share of the prunable channels removed, globally by BatchNorm |gamma|",
)
@click.option(
    "--layers",
    type=int,
    default=0,
    show_default=True,
    help="residual C3 bottlenecks removed whole (smallest mean |gamma|)",
)
@click.option("--teacher", default="", help="KD teacher ref (default: the unpruned --from model)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="run directory")
@click.option("--resume", is_flag=True, help="continue the run in OUT")
@click.option(
    "--sparsity",
    type=float,
    default=1e-3,
    show_default=True,
    help="lambda: constant rate of the L1 term on gamma",
)
@click.option(
    "--sparse-epochs",
    type=int,
    default=30,
    show_default=True,
    help="0: prune the source weights as they are",
)
@click.option(
    "--finetune-epochs",
    type=int,
    default=30,
    show_default=True,
    help="0: export the pruned model without fine-tuning",
)
@click.option("--sparse-lr", type=float, default=1e-3, show_default=True)
@click.option("--finetune-lr", type=float, default=1e-3, show_default=True)
@click.option(
    "--max-ratio",
    type=float,
    default=0.9,
    show_default=True,
    help="no layer loses more than this share of its channels",
)
@click.option("--imgsz", type=int, default=224, show_default=True)
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--split-seed",
    type=int,
    default=None,
    help="validation carve-out seed (default --seed); the source model's",
)
@click.option("--val-fraction", type=float, default=0.15, show_default=True)
@click.option("--eval-interval", type=int, default=5, show_default=True)
@click.option("--close-mosaic", type=int, default=5, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--bench-seconds",
    type=click.FloatRange(min=0.05),
    default=3.0,
    show_default=True,
    help="ONNX Runtime timing per model, batch size and round (source vs pruned)",
)
@click.option("--register", default="", help="register the export under this model name")
@click.option("--registry", default="", help="registry root of --from, --teacher and --register")
def prune(**kw: Any) -> None:
    """Compress a detector: BN-slimming sparse training, channel + layer pruning, KD."""
    from models.cli import registry_root, setup_logging
    from models.prune.pipeline import PruneOptions, run_prune

    setup_logging()
    kw["registry"] = str(registry_root(kw["registry"] or None))
    try:
        card = run_prune(PruneOptions(**kw))
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {"out": kw["out"], "metrics": card["metrics"], "pruning": card["pruning"]}, indent=2
        )
    )
