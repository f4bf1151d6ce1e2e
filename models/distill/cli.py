"""``lineinspect distil``: train a student with a frozen teacher.

Every option of ``lineinspect train`` is accepted with the same meaning (the parameters
are taken from that command, not copied), so progress bar, checkpoints (``OUT/last.pt``,
``OUT/best.pt``), ``--resume`` and evaluation behave exactly as in training.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from models.cli import brief, registry_root, setup_logging, train_options
from models.train.options import TrainOptions

log = logging.getLogger(__name__)


def _gains(values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for v in values:
        name, sep, num = v.partition("=")
        if not sep:
            raise click.BadParameter(f"{v!r}: use TERM=VALUE", param_hint="--kd-gain")
        try:
            out[name.strip()] = float(num)
        except ValueError as exc:
            raise click.BadParameter(f"{v!r}: not a number", param_hint="--kd-gain") from exc
    return out


def _resumed_config(out: Path, cfg: Any, parent: dict[str, Any]) -> Any:
    """On ``--resume`` the distillation settings of ``OUT/last.pt`` win over the flags."""
    from models.distill.loss import DistillConfig
    from models.train.checkpoint import load_checkpoint

    ck = load_checkpoint(out / "last.pt")
    stored = ck.get("distill")
    if stored is None:
        return cfg
    old = DistillConfig.from_dict(stored)
    if old != cfg:
        log.warning("resuming with the distillation settings of %s/last.pt: %s", out, stored)
    sha = (ck.get("parent") or {}).get("sha256")
    if sha and sha != parent.get("sha256"):
        log.warning("teacher differs from the one this run started with (%s)", ck.get("parent"))
    return old


@click.command()
@train_options
@click.option(
    "--teacher",
    "teacher_ref",
    required=True,
    help="teacher: a training checkpoint (.pt) or a registry ref name[@alias|:version]",
)
@click.option(
    "--registry",
    type=click.Path(file_okay=False),
    default=None,
    help="registry root for a teacher ref and --init-from (default: the configured "
    "registry_root, else the bundled registry)",
)
@click.option(
    "--feature-kd/--no-feature-kd",
    default=True,
    show_default=True,
    help="attention-guided feature distillation on the neck levels",
)
@click.option(
    "--response-kd/--no-response-kd",
    default=True,
    show_default=True,
    help="soft class/objectness targets and the teacher-bounded box loss",
)
@click.option("--attn-temp", type=float, default=None, help="attention-mask temperature")
@click.option("--resp-temp", type=float, default=None, help="soft-target temperature")
@click.option("--margin", type=float, default=None, help="teacher-bounded regression margin")
@click.option(
    "--kd-gain",
    multiple=True,
    metavar="TERM=VALUE",
    help="override a distillation gain (fg, bg, attn, global, resp_cls, resp_obj, "
    "resp_box); repeatable",
)
@click.option(
    "--measure",
    type=int,
    default=0,
    metavar="N",
    help="print the per-term loss magnitudes over N batches and exit (no training)",
)
def distil(
    teacher_ref: str,
    registry: str | None,
    feature_kd: bool,
    response_kd: bool,
    attn_temp: float | None,
    resp_temp: float | None,
    margin: float | None,
    kd_gain: tuple[str, ...],
    measure: int,
    **kw: Any,
) -> None:
    """Distil a T/S-model teacher into a student (attention-guided feature KD + response KD).

    The student is a T/S-model or a LIDD-Net (``--arch lidd-*``: response KD into its GFL
    head, docs/distillation.md); LIDD-Net teachers are refused."""
    from models.distill.loss import DistillConfig
    from models.distill.teacher import load_teacher
    from models.distill.trainer import DistillTrainer
    from models.train.distributed import finish

    setup_logging()
    cfg = DistillConfig(feature_kd=feature_kd, response_kd=response_kd)
    for name, val in (
        ("attn_temperature", attn_temp),
        ("resp_temperature", resp_temp),
        ("margin", margin),
    ):
        if val is not None:
            setattr(cfg, name, val)
    gains = _gains(kd_gain)
    unknown = set(gains) - set(cfg.gains)
    if unknown:
        raise click.BadParameter(f"unknown terms {sorted(unknown)}", param_hint="--kd-gain")
    cfg.gains.update(gains)
    opts = TrainOptions.from_cli(kw)
    try:
        root = registry_root(registry)
        teacher = load_teacher(teacher_ref, root)
        if opts.resume and (Path(opts.out) / "last.pt").exists():
            cfg = _resumed_config(Path(opts.out), cfg, teacher.parent)
        trainer = DistillTrainer(opts, teacher, cfg, registry_root=root)
        if measure > 0:
            from models.distill.measure import measure_terms

            click.echo(json.dumps(measure_terms(trainer, measure), indent=2))
            return
        best = trainer.fit()
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finish(trainer.dist)
    if trainer.dist.main:  # under torchrun: once
        click.echo(
            json.dumps({"out": opts.out, "teacher": teacher.parent, "best": brief(best)}, indent=2)
        )
