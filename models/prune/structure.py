"""The saved structure of a pruned detector: what channel and layer pruning changed
against the model its ``build_args`` describe, and how to rebuild that shape.

A pruned model is a plain ``nn.Module`` graph, but ``build_detector`` alone builds the
unpruned widths. A checkpoint of a pruned model therefore carries ``structure``: for
every module whose shape differs, its type and sizes (``Conv2d`` in/out channels and
groups, ``BatchNorm2d``/``LayerNorm`` widths, ``Linear`` features) or ``Identity`` for a
removed block. Rebuilding is: build from ``model_args``, then :func:`apply_structure`,
then ``load_state_dict``. No pickled classes, so checkpoints survive refactors that keep
module names, and resume, ``--init-from``, distillation and export need no variant
table entry for the pruned shape.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from models.detectors import Detector, build_detector

_KINDS = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.LayerNorm, nn.Identity)


def describe(m: nn.Module) -> dict[str, Any] | None:
    """Shape record of one module of a kind pruning changes (None for other kinds)."""
    if isinstance(m, nn.Conv2d):
        return {"type": "Conv2d", "in": m.in_channels, "out": m.out_channels, "groups": m.groups}
    if isinstance(m, nn.BatchNorm2d):
        return {"type": "BatchNorm2d", "features": m.num_features}
    if isinstance(m, nn.Linear):
        return {"type": "Linear", "in": m.in_features, "out": m.out_features}
    if isinstance(m, nn.LayerNorm):
        return {"type": "LayerNorm", "shape": list(m.normalized_shape)}
    if isinstance(m, nn.Identity):
        return {"type": "Identity"}
    return None


def structure_diff(model: Detector) -> dict[str, Any] | None:
    """Modules of ``model`` whose shape or kind differs from a fresh build of its
    ``build_args`` (None when there is none: an unpruned model)."""
    a = model.build_args()
    fresh = dict(
        build_detector(a["cfg"], a["num_classes"], a["head"], a["anchors"]).named_modules()
    )
    diff: dict[str, Any] = {}
    for name, m in model.named_modules():
        rec = describe(m)
        if rec is None or not name:
            continue
        ref = fresh.get(name)
        if ref is None or describe(ref) != rec:
            diff[name] = rec
    return {"modules": diff} if diff else None


def _rebuilt(old: nn.Module, rec: dict[str, Any]) -> nn.Module:
    kind = rec["type"]
    if kind == "Identity":
        return nn.Identity()
    if kind == "Conv2d":
        assert isinstance(old, nn.Conv2d)
        return nn.Conv2d(
            rec["in"],
            rec["out"],
            old.kernel_size,
            old.stride,
            old.padding,
            old.dilation,
            rec["groups"],
            old.bias is not None,
            old.padding_mode,
        )
    if kind == "BatchNorm2d":
        assert isinstance(old, nn.BatchNorm2d)
        return nn.BatchNorm2d(rec["features"], old.eps, old.momentum, old.affine)
    if kind == "Linear":
        assert isinstance(old, nn.Linear)
        return nn.Linear(rec["in"], rec["out"], old.bias is not None)
    if kind == "LayerNorm":
        assert isinstance(old, nn.LayerNorm)
        return nn.LayerNorm(rec["shape"], old.eps, old.elementwise_affine)
    raise ValueError(f"unknown module kind {kind!r} in a pruned structure")


def apply_structure(model: Detector, structure: dict[str, Any]) -> Detector:
    """Give a freshly built ``model`` the shapes recorded by :func:`structure_diff`
    (removed blocks first, so records below them are skipped). Weights are left
    uninitialised for ``load_state_dict`` to fill."""
    mods: dict[str, dict[str, Any]] = structure["modules"]
    removed: list[str] = []
    for name in sorted(mods, key=lambda n: (mods[n]["type"] != "Identity", n.count("."), n)):
        if any(name.startswith(r + ".") for r in removed):
            continue
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, leaf) if not leaf.isdigit() else parent[int(leaf)]  # type: ignore[index]
        new = _rebuilt(old, mods[name])
        if leaf.isdigit():
            parent[int(leaf)] = new  # type: ignore[index]
        else:
            setattr(parent, leaf, new)
        if mods[name]["type"] == "Identity":
            removed.append(name)
    refresh_widths(model)
    return model


def refresh_widths(model: Detector) -> None:
    """Update the width attributes a distiller reads (``neck.out_channels``) to the
    pruned channel counts (the head stems' inputs)."""
    model.neck.out_channels = tuple(s.conv.in_channels for s in model.head.stems)
