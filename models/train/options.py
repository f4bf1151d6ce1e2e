"""Training options: what ``lineinspect train`` (and ``distil``) expose, declared once.

Each field that is a command-line option carries its :class:`Cli` declaration;
:func:`models.cli.train_options` turns them into the click options and
:meth:`TrainOptions.from_cli` turns the parsed values back."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Cli:
    """How a field appears on the command line (``--field-name`` unless ``flag``)."""

    help: str | None = None
    flag: str | None = None  # the option's name when it is not --field-name
    choices: tuple[str, ...] | None = None
    required: bool = False
    show_default: bool = True
    # A boolean field set False by the flag ``flag`` (e.g. --no-adaptive).
    negates: bool = False
    file: bool = False  # an existing file
    directory: bool = False  # a directory path (need not exist)


def _cli(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    return dataclasses.field(default=default, metadata={"cli": Cli(**kw)})


#: LIDD-Net and its ablation variants (models/detectors/lidd.py), named here so that
#: ``--help`` imports no torch.
LIDD_ARCHS = ("lidd-net", "lidd-base", "lidd-latm", "lidd-cisb", "lidd-tiny")


@dataclass
class TrainOptions:
    """All knobs of one training run; stored in every checkpoint."""

    data: str = _cli(required=True, file=True, help="data.yaml", show_default=False)
    arch: str = _cli(
        "s-model",
        choices=("t-model", "s-model", "tiny", *LIDD_ARCHS),
        show_default=False,
        help="lidd-*: LIDD-Net and its ablation rows (docs/models.md; a GFL head served as "
        "anchor_free: pass --head anchor_free)",
    )
    epochs: int = _cli(100)
    imgsz: int = _cli(224)
    batch: int = _cli(16)
    out: str = _cli(
        "runs/train", required=True, directory=True, help="run directory", show_default=False
    )
    resume: bool = _cli(False, help="continue from OUT/last.pt if it exists")
    # anchor-based (YOLOv5 + k-means anchors) scores far higher on NEU-DET
    # (docs/models.md), so it is the default; "anchor_free" is TAL + YOLOX decoding.
    head: str = _cli(
        "anchor_based",
        choices=("anchor_based", "anchor_free"),
        help="anchor_based: YOLOv5 decoding with k-means anchors (the better on NEU-DET, "
        "docs/models.md); anchor_free: YOLOX decoding with task-aligned assignment",
    )
    lr: float = _cli(2e-3)
    weight_decay: float = _cli(0.05)
    warmup_epochs: float = _cli(3.0)
    close_mosaic: int = _cli(15)
    mosaic_prob: float = _cli(1.0, flag="--mosaic")
    eval_interval: int = _cli(5)
    val_fraction: float = _cli(0.15)
    seed: int = _cli(0)
    # Seed of the validation carve-out; None: ``seed``. Fixed apart from ``seed`` to
    # compare training seeds on one validation set, and kept equal to the teacher's when
    # distilling (a teacher that trained on the student's carve-out would leak it).
    split_seed: int | None = _cli(
        None,
        help="seed of the validation carve-out (default: --seed); keep it fixed to compare "
        "training seeds, and equal to the teacher's when distilling",
        show_default=False,
    )
    threads: int = _cli(2, help="torch CPU threads")
    workers: int = _cli(1, help="data loader workers")
    device: str = _cli("auto", help="auto, cpu, cuda, cuda:1")
    adaptive_weights: bool = _cli(
        True, flag="--no-adaptive", negates=True, help="disable the eq. 18 loss-weight updater"
    )
    init_from: str = _cli(
        "",
        help="warm start from a checkpoint or a registry ref with a model.pt (e.g. "
        "neu-det-student): its architecture and weights, a fresh optimizer and schedule",
        show_default=False,
    )  # checkpoint path or registry ref with a model.pt
    # Not on the command line:
    final_lr_ratio: float = 0.05
    augment: bool = True
    ema_decay: float = 0.9998
    cache: bool = True
    max_iters_per_epoch: int = 0  # 0: whole epoch (tests use a small number)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)

    @classmethod
    def from_cli(cls, values: dict[str, Any]) -> TrainOptions:
        """The options of parsed command-line ``values`` (keyed by click parameter name);
        keys that are no training option are ignored."""
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            cli = f.metadata.get("cli")
            if cli is None:
                continue
            key = param_name(f.name, cli)
            if key in values:
                kw[f.name] = not values[key] if cli.negates else values[key]
        return cls(**kw)


def param_name(field_name: str, cli: Cli) -> str:
    """The click parameter name of a field's option (``--no-adaptive``: ``no_adaptive``)."""
    return cli.flag.lstrip("-").replace("-", "_") if cli.negates and cli.flag else field_name


def default(name: str) -> Any:
    """The default value of the option ``name``."""
    value = next(f.default for f in dataclasses.fields(TrainOptions) if f.name == name)
    if value is dataclasses.MISSING:
        raise KeyError(f"training option {name!r} has no default")
    return value


def carve_out_seed(opts: dict[str, Any]) -> int:
    """The validation carve-out seed of training options as stored in checkpoints
    (``TrainOptions.to_dict()``): ``split_seed``, else ``seed`` (checkpoints from before
    ``split_seed`` have only ``seed``)."""
    split = opts.get("split_seed")
    return int(opts.get("seed", default("seed")) if split is None else split)
