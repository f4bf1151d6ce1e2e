"""Checkpoints: save/load everything needed for an exact resume, and rebuild a detector."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.detectors import Detector, build_detector


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


def model_from_checkpoint(ckpt: dict[str, Any], use_ema: bool = True) -> Detector:
    """Rebuild the detector stored in a checkpoint (EMA weights when present), in eval mode."""
    args = ckpt["model_args"]
    model = build_detector(args["cfg"], args["num_classes"], args["head"], args["anchors"])
    key = "ema" if use_ema and ckpt.get("ema") else "model"
    sd = ckpt[key]["ema"] if key == "ema" else ckpt["model"]
    model.load_state_dict(sd)
    return model.eval()
