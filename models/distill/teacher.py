"""Load the frozen teacher: a training checkpoint path, or a registry reference
(``name``, ``name@alias``, ``name:version``) whose version directory holds the torch
checkpoint ``model.pt`` (format in :mod:`models.registry`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.detectors import Detector
from models.registry import BUNDLED_ROOT
from models.train.checkpoint import load_checkpoint, model_from_checkpoint
from models.weights import resolve_weights

__all__ = ["Teacher", "load_teacher", "resolve_teacher"]


@dataclass
class Teacher:
    """A frozen teacher and what a distilled student's card says about it (``parent``)."""

    model: Detector
    parent: dict[str, Any]
    class_names: list[str]
    imgsz: int
    data_fingerprint: str | None = None  # of the teacher's own training samples


def resolve_teacher(ref: str, root: Path = BUNDLED_ROOT) -> tuple[Path, dict[str, Any]]:
    """Checkpoint path and ``parent`` record of a teacher path or registry reference."""
    return resolve_weights(ref, root)


def load_teacher(ref: str, root: Path = BUNDLED_ROOT) -> Teacher:
    """Load a teacher (EMA weights when present), in eval mode, with gradients off."""
    path, parent = resolve_teacher(ref, root)
    ck = load_checkpoint(path)
    model = model_from_checkpoint(ck)
    for p in model.parameters():
        p.requires_grad_(False)
    opts = ck.get("opts") or {}
    metrics = ck.get("best_metrics") or ck.get("metrics") or {}
    parent["architecture"] = opts.get("arch")
    if "map50" in metrics:
        parent["map50"] = metrics["map50"]
    return Teacher(
        model, parent, list(ck["class_names"]), int(ck["imgsz"]), ck.get("data_fingerprint")
    )
