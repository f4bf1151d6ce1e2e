"""Load the frozen teacher: a training checkpoint path, or a registry reference
(``name``, ``name@alias``, ``name:version``) whose version directory holds the torch
checkpoint ``model.pt`` (registry layout of ../shared/DESIGN.md, read here without
importing service/)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.detectors import Detector
from models.export import sha256
from models.train.checkpoint import load_checkpoint, model_from_checkpoint

_REF_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,63})(?:@(?P<alias>[^@:]+)|:(?P<version>\d+))?$"
)
DEFAULT_REGISTRY = Path(__file__).resolve().parents[2] / "registry"


@dataclass
class Teacher:
    """A frozen teacher and what a distilled student's card says about it (``parent``)."""

    model: Detector
    parent: dict[str, Any]
    class_names: list[str]
    imgsz: int


def registry_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$LINEINSPECT_REGISTRY_ROOT``, else the bundled ``registry/``."""
    if root:
        return Path(root)
    env = os.environ.get("LINEINSPECT_REGISTRY_ROOT")
    return Path(env) if env else DEFAULT_REGISTRY


def resolve_teacher(ref: str, root: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Checkpoint path and ``parent`` record of a teacher path or registry reference."""
    path = Path(ref)
    if path.is_file():
        return path, {"checkpoint": str(path.resolve()), "sha256": sha256(path)}
    m = _REF_RE.match(ref.strip())
    if not m:
        raise FileNotFoundError(f"teacher {ref!r} is neither a checkpoint file nor a model ref")
    name, reg = m["name"], registry_root(root)
    if m["version"] is not None:
        version = int(m["version"])
    else:
        alias = m["alias"] or "production"
        aliases_path = reg / name / "aliases.json"
        if not aliases_path.is_file():
            raise FileNotFoundError(f"no model {name!r} with aliases in registry {reg}")
        aliases = json.loads(aliases_path.read_text())
        if alias not in aliases:
            raise FileNotFoundError(f"model {name!r} has no alias {alias!r} ({sorted(aliases)})")
        version = int(aliases[alias])
    ckpt = reg / name / str(version) / "model.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"{name}:{version} has no torch checkpoint {ckpt}; distil from a checkpoint path "
            "or register the teacher with its model.pt"
        )
    return ckpt, {"name": name, "version": version, "sha256": sha256(ckpt)}


def load_teacher(ref: str, root: str | Path | None = None) -> Teacher:
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
    return Teacher(model, parent, list(ck["class_names"]), int(ck["imgsz"]))
