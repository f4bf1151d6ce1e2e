"""Checkpoints: save/load everything needed for an exact resume, and rebuild a detector."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.detectors import Detector, build_detector
from models.registry import BUNDLED_ROOT
from models.train.options import carve_out_seed
from models.weights import resolve_weights

log = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU, CUDA) RNG states."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` to ``path`` (tmp file + rename: never a torn checkpoint)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (on CPU)."""
    return torch.load(Path(path), map_location="cpu", weights_only=False)


# What a slim (weights-only) checkpoint keeps of a training checkpoint.
_SLIM_KEYS = (
    "model_args",
    "class_names",
    "imgsz",
    "spec",
    "opts",
    "data_fingerprint",
    "params",
    "best_metrics",
    "metrics",
    "parent",
    "epoch",
    "structure",
    "pruning",
)


def slim_checkpoint(ckpt: dict[str, Any], half: bool = True) -> dict[str, Any]:
    """The shippable part of a training checkpoint: the (EMA) weights and what rebuilds,
    describes and evaluates the model, without optimizer, RNG or loss-weight state.

    Floating-point tensors are stored as float16 by default (half the size; the model is
    rebuilt in float32, and fp16 rounding of weights is far below what changes a
    detection), except those beyond float16's range (65504), which stay float32: deep
    BatchNorm ``running_var`` entries of trained detectors reach 10^5, and cast to fp16
    they become inf, which zeroes the channel in eval and stays inf through any warm
    start (momentum updates of inf are inf). This is the registry's optional
    ``model.pt``: what a teacher is loaded from for distillation and what ``lineinspect
    train --init-from`` starts from.
    """
    sd = model_from_checkpoint(ckpt).state_dict()
    if half:
        sd = {k: _half_if_representable(v) for k, v in sd.items()}
    slim = {k: ckpt[k] for k in _SLIM_KEYS if k in ckpt}
    slim["model"] = sd
    slim["slim"] = True
    return slim


def _half_if_representable(v: torch.Tensor) -> torch.Tensor:
    """``v`` as float16 when every value survives the cast (no overflow to inf), else ``v``."""
    if not v.is_floating_point():
        return v
    h = v.half()
    return h if bool(torch.isfinite(h).all()) else v


def model_from_checkpoint(ckpt: dict[str, Any], use_ema: bool = True) -> Detector:
    """Rebuild the detector stored in a checkpoint (EMA weights when present), in eval mode.

    Raises ``ValueError`` on non-finite weights or statistics: a model that silently drops
    channels must not be served, taught from or trained on.
    """
    model = build_from_checkpoint(ckpt)
    key = "ema" if use_ema and ckpt.get("ema") else "model"
    sd = ckpt[key]["ema"] if key == "ema" else ckpt["model"]
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(
            f"checkpoint has non-finite values in {len(bad)} tensors ({', '.join(bad[:3])}); "
            "a model.pt cast to float16 wholesale can be repaired from its ONNX with "
            "python scripts/bn_repair.py VERSION_DIR"
        )
    model.load_state_dict(sd)  # copy_ casts a slim checkpoint's float16 back to float32
    return model.eval()


def build_from_checkpoint(ckpt: dict[str, Any]) -> Detector:
    """The (untrained) detector a checkpoint describes: built from its ``model_args``, then
    given its ``structure`` when it was pruned (channel widths and removed blocks, see
    models/prune/structure.py), so its state dict loads."""
    from models.prune.structure import apply_structure

    args = ckpt["model_args"]
    model = build_detector(args["cfg"], args["num_classes"], args["head"], args["anchors"])
    if ckpt.get("structure"):
        apply_structure(model, ckpt["structure"])
    return model


def structure_of(model: Detector) -> dict[str, Any] | None:
    """What a pruned ``model`` changed against its own ``build_args`` (None if nothing)."""
    from models.prune.structure import structure_diff

    return structure_diff(model)


def warm_start(
    ref: str,
    class_names: Sequence[str],
    arch: str,
    head: str,
    data: str = "",
    fingerprint: str | None = None,
    registry_root: Path = BUNDLED_ROOT,
) -> tuple[Detector, dict[str, Any]]:
    """The detector (architecture and EMA weights) of ``ref``, a checkpoint or a ref into
    the registry at ``registry_root`` with a ``model.pt``, in train mode, and its
    provenance record. ``train --init-from`` trains on from it with a fresh optimizer and
    schedule: how a shipped model is trained further when its run directory is gone."""
    path, record = resolve_weights(ref, registry_root)
    ck = load_checkpoint(path)
    if list(ck["class_names"]) != list(class_names):
        raise ValueError(
            f"--init-from {ref}: classes {ck['class_names']} differ from the data's "
            f"{list(class_names)}"
        )
    ck_arch = (ck.get("opts") or {}).get("arch")
    if ck_arch and ck_arch != arch:
        raise ValueError(f"--init-from {ref} is a {ck_arch}, not a {arch}")
    check_same_split(ref, ck, data, fingerprint)
    model = model_from_checkpoint(ck).train()
    if model.head_kind != head:
        raise ValueError(f"--init-from {ref} has a {model.head_kind} head, not {head}")
    record["epochs"] = ck.get("epoch", -1) + 1
    record["map50"] = (ck.get("best_metrics") or {}).get("map50")
    log.info("warm start from %s (%s)", path, record)
    return model, record


def check_same_split(ref: str, ck: dict[str, Any], data: str, fingerprint: str | None) -> None:
    """Refuse warm-start weights that trained on this run's validation images.

    Same data file but other training samples means another validation carve-out
    (``--split-seed`` / ``--val-fraction``): part of this run's carve-out was those
    weights' training data, and every mAP this run reports would be optimistic. With
    other data (newly labelled images) that cannot be told apart, so it only warns."""
    theirs = ck.get("data_fingerprint")
    if not theirs or fingerprint is None or theirs == fingerprint:
        return
    o = ck.get("opts") or {}
    if data and o.get("data") and Path(o["data"]).resolve() == Path(data).resolve():
        raise ValueError(
            f"--init-from {ref} was trained on the same data with another validation "
            f"carve-out, so it has seen images this run validates on: pass --split-seed "
            f"{carve_out_seed(o)} --val-fraction {o.get('val_fraction')}"
        )
    log.warning(
        "--init-from %s trained on other samples (data fingerprint %s) than this run (%s): "
        "if they include this run's validation carve-out its mAP is optimistic",
        ref,
        theirs,
        fingerprint,
    )
