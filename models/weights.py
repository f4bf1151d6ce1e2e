"""Torch weights by reference: a checkpoint path, or a registry reference (``name``,
``name@alias``, ``name:version``) whose version directory holds the optional torch
checkpoint ``model.pt`` (format in :mod:`models.registry`). Used by distillation (the
teacher) and ``train --init-from``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.registry import (
    ALIASES_FILE,
    BUNDLED_ROOT,
    WEIGHTS_FILE,
    MalformedReference,
    ModelRef,
    read_aliases,
    sha256_file,
)


def resolve_weights(ref: str, root: Path = BUNDLED_ROOT) -> tuple[Path, dict[str, Any]]:
    """Checkpoint path and provenance record (``name``/``version`` or ``checkpoint``, and
    ``sha256``) of a checkpoint path or a reference into the registry at ``root``."""
    path = Path(ref)
    if path.is_file():
        return path, {"checkpoint": str(path.resolve()), "sha256": sha256_file(path)}
    try:
        r = ModelRef.parse(ref)
    except MalformedReference:
        raise FileNotFoundError(f"{ref!r} is neither a checkpoint file nor a model ref") from None
    name, reg = r.name, root
    if r.version is not None:
        version = r.version
    else:
        aliases_path = reg / name / ALIASES_FILE
        if not aliases_path.is_file():
            raise FileNotFoundError(f"no model {name!r} with aliases in registry {reg}")
        aliases = read_aliases(aliases_path)
        if r.alias not in aliases:
            raise FileNotFoundError(f"model {name!r} has no alias {r.alias!r} ({sorted(aliases)})")
        version = aliases[r.alias]
    ckpt = reg / name / str(version) / WEIGHTS_FILE
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"{name}:{version} has no torch checkpoint {ckpt}; use a checkpoint path "
            "or register it with its model.pt (lineinspect export --weights)"
        )
    return ckpt, {"name": name, "version": version, "sha256": sha256_file(ckpt)}
