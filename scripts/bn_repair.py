"""Recover BatchNorm statistics that a float16 ``model.pt`` lost to overflow.

When it is needed: a ``model.pt`` written with every tensor cast to float16 loses the
deep ``running_var`` entries above 65504 (they become inf), and loading it fails with
"non-finite values" (:func:`models.train.checkpoint.model_from_checkpoint`).
:func:`models.train.checkpoint.slim_checkpoint` keeps such tensors in float32, and every
bundled ``model.pt`` is finite (``tests/unit/test_bn_overflow.py``), so only a file
written by an older export needs this. The ONNX file of the same version was exported
from the float32 checkpoint with each BatchNorm folded into its convolution
(``W' = W * gamma / sqrt(var + eps)`` per output channel), so the lost variances can be
solved back exactly from it: ``var = (gamma * |W| / |W'|)^2 - eps``. Every channel that
was *not* lost is re-derived the same way and checked against the stored value, which
proves the match of folded weight to module before anything is written.

    python scripts/bn_repair.py registry/neu-det-teacher/4     # rewrites model.pt + card
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.registry import sha256_file as sha256
from models.train.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


def _channel_scales(w: np.ndarray, folded: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-output-channel least-squares ``s`` with ``folded ≈ s * w``, and the worst
    relative residual (small only when ``folded`` really is ``w`` rescaled per channel)."""
    a = w.reshape(w.shape[0], -1).astype(np.float64)
    b = folded.reshape(folded.shape[0], -1).astype(np.float64)
    s = (a * b).sum(1) / np.maximum((a * a).sum(1), 1e-30)
    resid = np.linalg.norm(b - s[:, None] * a, axis=1) / np.maximum(
        np.linalg.norm(b, axis=1), 1e-30
    )
    return s, float(resid.max())


def repair_state_dict(
    sd: dict[str, torch.Tensor],
    onnx_weights: list[np.ndarray],
    eps: float = 1e-3,
    tol: float = 0.02,
) -> list[str]:
    """Replace non-finite ``*.running_var`` entries of ``sd`` in place (as float32) with the
    values solved from the folded ONNX convolution weights; returns the repaired keys.

    ``eps`` is the BatchNorm epsilon of the detectors. Raises ``ValueError`` when no folded
    weight matches a damaged layer or the channels that survived disagree with it by more
    than ``tol`` (relative): then the ONNX is not this checkpoint's export.
    """
    repaired = []
    for key in [k for k, v in sd.items() if k.endswith(".running_var")]:
        var = sd[key].float()
        bad = ~torch.isfinite(var)
        if not bool(bad.any()):
            continue
        prefix = key[: -len("running_var")]
        conv_key = prefix.rsplit("bn.", 1)[0] + "conv.weight"
        if not prefix.endswith("bn.") or conv_key not in sd:
            raise ValueError(f"{key}: no convolution {conv_key} to solve it from")
        w = sd[conv_key].float().numpy()
        fits = [_channel_scales(w, f) for f in onnx_weights if f.shape == w.shape]
        if not fits:
            raise ValueError(f"{key}: the ONNX has no folded weight of shape {w.shape}")
        scales, resid = min(fits, key=lambda t: t[1])
        if resid > tol:
            raise ValueError(f"{key}: best folded weight fits with residual {resid:.3g}")
        gamma = sd[prefix + "weight"].float().numpy().astype(np.float64)
        solved = torch.from_numpy((gamma / scales) ** 2 - eps).float()
        good = ~bad
        rel = (
            ((solved[good] - var[good]).abs() / var[good].abs().clamp_min(1e-6)).max()
            if bool(good.any())
            else torch.tensor(0.0)
        )  # every channel lost: the weight residual is the only check
        if float(rel) > tol:
            raise ValueError(f"{key}: solved variances disagree with the stored ones ({rel:.3g})")
        sd[key] = torch.where(bad, solved, var)
        repaired.append(key)
        log.info(
            "%s: %d channel(s) recovered (%.4g to %.4g)",
            key,
            int(bad.sum()),
            float(solved[bad].min()),
            float(solved[bad].max()),
        )
    return repaired


def repair_version(version_dir: str | Path) -> dict[str, Any]:
    """Repair ``model.pt`` of one registry version directory from its ``model.onnx`` and
    record it in ``card.json`` (new ``weights_sha256``, the old one under
    ``weights_repair``). A no-op when nothing is damaged."""
    import onnx
    from onnx import numpy_helper

    vdir = Path(version_dir)
    ck = load_checkpoint(vdir / "model.pt")
    model = onnx.load(str(vdir / "model.onnx"))
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer]
    old_sha = sha256(vdir / "model.pt")
    repaired = repair_state_dict(ck["model"], [w for w in weights if w.ndim == 4])
    if not repaired:
        return {"repaired": []}
    save_checkpoint(vdir / "model.pt", ck)
    card_path = vdir / "card.json"
    card = json.loads(card_path.read_text())
    card["weights_repair"] = {
        "from_sha256": old_sha,
        "tensors": repaired,
        "reason": "float16 overflow of BatchNorm running_var, solved back from model.onnx",
    }
    card["weights_sha256"] = sha256(vdir / "model.pt")
    card_path.write_text(json.dumps(card, indent=2))
    return {"repaired": repaired, "weights_sha256": card["weights_sha256"]}


def main() -> None:
    """``python scripts/bn_repair.py VERSION_DIR...``"""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("version_dirs", nargs="+", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for d in args.version_dirs:
        log.info("%s: %s", d, json.dumps(repair_version(d)))


if __name__ == "__main__":
    main()
