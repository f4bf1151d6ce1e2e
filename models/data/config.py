"""``DATA.yaml`` (YOLO-style) loading and the train/val split used for training.

Keys: ``path`` (dataset root; relative paths resolve against the yaml's directory,
default: that directory), ``train``, optional ``val``, ``names`` (list, or dict of
contiguous ids 0..n-1), optional ``nc`` (checked against ``names``) and optional
``format: yolo | voc | coco`` (default ``yolo``). ``train``/``val`` resolve against ``path``:

* yolo: an image directory, a ``.txt`` image list, or a list of those;
* voc: a VOC root (``Annotations/`` + ``JPEGImages/``) or an image-set ``.txt`` whose
  VOC root is ``path``; or a list of those;
* coco: an instances JSON (images next to it) or ``{annotations: x.json, images: dir}``;
  or a list of those.

``names`` is required for yolo; for voc/coco it is read from the annotations when absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from models.data.formats import read_coco, read_voc, read_yolo
from models.data.sample import Sample
from models.data.split import stratified_split

Format = Literal["yolo", "voc", "coco"]


@dataclass(frozen=True)
class SplitEntry:
    """One source of a split: a path and, for COCO, the image directory."""

    path: Path
    images: Path | None = None


@dataclass(frozen=True)
class DataConfig:
    """A parsed ``DATA.yaml`` with every path resolved."""

    yaml_path: Path
    root: Path
    format: Format
    train: tuple[SplitEntry, ...]
    val: tuple[SplitEntry, ...] | None
    names: list[str] | None


def _names(raw: Any, yaml_path: Path) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        keys = sorted(int(k) for k in raw)
        if keys != list(range(len(keys))):
            raise ValueError(f"{yaml_path}: names ids must be 0..n-1, got {keys}")
        return [str(raw[k] if k in raw else raw[str(k)]) for k in keys]
    if isinstance(raw, list):
        return [str(n) for n in raw]
    raise ValueError(f"{yaml_path}: names must be a list or a dict")


def _entries(raw: Any, root: Path, fmt: Format, yaml_path: Path) -> tuple[SplitEntry, ...] | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    out: list[SplitEntry] = []
    for item in items:
        if isinstance(item, dict):
            if fmt != "coco" or "annotations" not in item:
                raise ValueError(
                    f"{yaml_path}: a mapping split needs format coco and 'annotations'"
                )
            images = item.get("images")
            out.append(SplitEntry(root / item["annotations"], root / images if images else None))
        else:
            out.append(SplitEntry(root / str(item)))
    return tuple(out)


def load_data_config(path: Path | str) -> DataConfig:
    """Parse a ``DATA.yaml`` and resolve its paths (see the module docstring)."""
    yaml_path = Path(path).resolve()
    raw = yaml.safe_load(yaml_path.read_text()) or {}
    if "train" not in raw:
        raise ValueError(f"{yaml_path}: 'train' is required")
    fmt_raw = str(raw.get("format", "yolo")).lower()
    if fmt_raw not in ("yolo", "voc", "coco"):
        raise ValueError(f"{yaml_path}: format must be yolo, voc or coco, got {fmt_raw!r}")
    fmt = cast(Format, fmt_raw)
    root = Path(raw.get("path") or ".")
    root = (root if root.is_absolute() else yaml_path.parent / root).resolve()
    names = _names(raw.get("names"), yaml_path)
    if names is None and fmt == "yolo":
        raise ValueError(f"{yaml_path}: 'names' is required for the yolo format")
    if names is not None and "nc" in raw and int(raw["nc"]) != len(names):
        raise ValueError(f"{yaml_path}: nc={raw['nc']} but {len(names)} names")
    return DataConfig(
        yaml_path=yaml_path,
        root=root,
        format=fmt,
        train=_entries(raw["train"], root, fmt, yaml_path) or (),
        val=_entries(raw.get("val"), root, fmt, yaml_path),
        names=names,
    )


def read_split(
    cfg: DataConfig, entries: Sequence[SplitEntry], names: list[str] | None
) -> tuple[list[Sample], list[str]]:
    """Read every entry of one split in ``cfg.format``; returns samples and class names."""
    samples: list[Sample] = []
    for e in entries:
        if cfg.format == "yolo":
            assert names is not None
            samples.extend(read_yolo(e.path, num_classes=len(names)))
        elif cfg.format == "voc":
            if e.path.suffix == ".txt":
                got, names = read_voc(cfg.root, names, image_set=e.path)
            else:
                got, names = read_voc(e.path, names)
            samples.extend(got)
        else:
            got, names = read_coco(e.path, e.images, names)
            samples.extend(got)
    if names is None:
        raise ValueError(f"{cfg.yaml_path}: no class names found")
    return samples, names


def load_splits(
    cfg: DataConfig | Path | str, val_fraction: float = 0.15, seed: int = 0
) -> tuple[list[Sample], list[Sample], list[str]]:
    """Return ``(train, val, class_names)``.

    With a ``val`` split in the yaml it is read as is; without one, ``val`` is a seeded,
    per-class-stratified carve-out of ``train`` (:func:`models.data.split.stratified_split`:
    stratum = the image's majority class, ``round(n * val_fraction)`` per stratum,
    deterministic for a given ``seed`` and independent of file-system order).
    """
    if not isinstance(cfg, DataConfig):
        cfg = load_data_config(cfg)
    train, names = read_split(cfg, cfg.train, cfg.names)
    if cfg.val is not None:
        val, names = read_split(cfg, cfg.val, names)
        return train, val, names
    train, val = stratified_split(train, val_fraction, seed)
    return train, val, names
