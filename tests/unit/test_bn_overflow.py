"""float16 registry weights: BatchNorm variances beyond fp16's range stay float32, a
damaged checkpoint is refused, and every bundled ``model.pt`` loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.train.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    slim_checkpoint,
)
from tests.unit.test_weights import _checkpoint

torch.set_num_threads(1)
HUGE = "backbone.stem.bn.running_var"  # any Conv-BN layer of the tiny detector


def _huge_var_checkpoint() -> dict[str, object]:
    ck = _checkpoint()
    sd = ck["model"]
    assert isinstance(sd, dict) and HUGE in sd
    var = sd[HUGE].clone()
    var[::2] = torch.linspace(7e4, 3e5, len(var[::2]))  # trained deep layers reach 1e5
    sd[HUGE] = var
    return ck


def test_slim_keeps_values_beyond_float16_in_float32() -> None:
    ck = _huge_var_checkpoint()
    slim = slim_checkpoint(ck)
    assert slim["model"][HUGE].dtype == torch.float32
    torch.testing.assert_close(slim["model"][HUGE], ck["model"][HUGE])  # type: ignore[index]
    others = [v for k, v in slim["model"].items() if k != HUGE and v.is_floating_point()]
    assert others and all(v.dtype == torch.float16 for v in others)
    model_from_checkpoint(slim)  # finite: loads


def test_non_finite_checkpoint_is_refused() -> None:
    ck = _huge_var_checkpoint()
    ck["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"non-finite.*bn_repair"):
        model_from_checkpoint(ck)


def test_bundled_registry_weights_are_finite() -> None:
    """Every shipped ``model.pt`` (teachers for ``distil``, ``--init-from`` sources) loads."""
    shipped = sorted((Path(__file__).resolve().parents[2] / "registry").glob("*/*/model.pt"))
    assert shipped
    for path in shipped:
        model_from_checkpoint(load_checkpoint(path))
