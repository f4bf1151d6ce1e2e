"""float16 registry weights: BatchNorm variances beyond fp16's range stay float32, a
damaged checkpoint is refused, and ``models.bn_repair`` solves lost variances back from
the ONNX export (where each BatchNorm is folded into its convolution)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.bn_repair import repair_version
from models.export import export_checkpoint
from models.train.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
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


def test_repair_solves_lost_variances_from_the_onnx(tmp_path: Path) -> None:
    ck = _huge_var_checkpoint()
    want = ck["model"][HUGE].clone()  # type: ignore[index]
    export_checkpoint(ck, model_from_checkpoint(ck), tmp_path / "v", weights=True)
    # Damage model.pt as the old wholesale float16 cast did.
    slim = load_checkpoint(tmp_path / "v" / "model.pt")
    slim["model"] = {k: v.half() if v.is_floating_point() else v for k, v in slim["model"].items()}
    assert not bool(torch.isfinite(slim["model"][HUGE].float()).all())
    save_checkpoint(tmp_path / "v" / "model.pt", slim)

    out = repair_version(tmp_path / "v")
    assert out["repaired"] == [HUGE]
    fixed = load_checkpoint(tmp_path / "v" / "model.pt")
    np.testing.assert_allclose(fixed["model"][HUGE].numpy(), want.numpy(), rtol=0.01)
    card = json.loads((tmp_path / "v" / "card.json").read_text())
    assert card["weights_sha256"] == out["weights_sha256"] != card["weights_repair"]["from_sha256"]
    model_from_checkpoint(fixed)
    assert repair_version(tmp_path / "v") == {"repaired": []}  # idempotent


def test_repair_refuses_an_onnx_of_another_model(tmp_path: Path) -> None:
    ck = _huge_var_checkpoint()
    export_checkpoint(ck, model_from_checkpoint(ck), tmp_path / "v", weights=True)
    other = _huge_var_checkpoint()
    torch.manual_seed(1)
    for k, v in other["model"].items():  # type: ignore[union-attr]
        if k.endswith("conv.weight"):  # same shapes and scale, not proportional per channel
            v.mul_(torch.empty_like(v).uniform_(0.5, 1.5))
    export_checkpoint(other, model_from_checkpoint(other), tmp_path / "o", weights=False)
    slim = load_checkpoint(tmp_path / "v" / "model.pt")
    slim["model"][HUGE] = torch.full_like(slim["model"][HUGE], float("inf"))
    save_checkpoint(tmp_path / "v" / "model.pt", slim)
    (tmp_path / "v" / "model.onnx").write_bytes((tmp_path / "o" / "model.onnx").read_bytes())
    with pytest.raises(ValueError, match=r"residual|disagree"):
        repair_version(tmp_path / "v")


def test_bundled_registry_weights_are_finite() -> None:
    """Every shipped ``model.pt`` (teachers for ``distil``, ``--init-from`` sources) loads."""
    shipped = sorted((Path(__file__).resolve().parents[2] / "registry").glob("*/*/model.pt"))
    assert shipped
    for path in shipped:
        model_from_checkpoint(load_checkpoint(path))
