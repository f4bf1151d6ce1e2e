"""Torch weights by reference: a checkpoint path, or a registry reference (``name``,
``name@alias``, ``name:version``) whose version directory holds the optional torch
checkpoint ``model.pt`` (registry layout of ../shared/DESIGN.md, read here without
importing service/). Used by distillation (the teacher) and ``train --init-from``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from models.export import sha256

_REF_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,63})(?:@(?P<alias>[^@:]+)|:(?P<version>\d+))?$"
)
DEFAULT_REGISTRY = Path(__file__).resolve().parents[1] / "registry"


def registry_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$LINEINSPECT_REGISTRY_ROOT``, else the bundled ``registry/``."""
    if root:
        return Path(root)
    env = os.environ.get("LINEINSPECT_REGISTRY_ROOT")
    return Path(env) if env else DEFAULT_REGISTRY


def resolve_weights(ref: str, root: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Checkpoint path and provenance record (``name``/``version`` or ``checkpoint``, and
    ``sha256``) of a checkpoint path or registry reference."""
    path = Path(ref)
    if path.is_file():
        return path, {"checkpoint": str(path.resolve()), "sha256": sha256(path)}
    m = _REF_RE.match(ref.strip())
    if not m:
        raise FileNotFoundError(f"{ref!r} is neither a checkpoint file nor a model ref")
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
            f"{name}:{version} has no torch checkpoint {ckpt}; use a checkpoint path "
            "or register it with its model.pt (lineinspect export --weights)"
        )
    return ckpt, {"name": name, "version": version, "sha256": sha256(ckpt)}
