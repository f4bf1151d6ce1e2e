"""Shipped torch weights: ``export --weights`` writes a slim float16 ``model.pt`` that the
registry keeps, and ``train --init-from`` warm-starts from it (by path or registry ref)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.detectors import build_detector
from models.export import export_checkpoint
from models.train.checkpoint import load_checkpoint, model_from_checkpoint
from models.train.options import TrainOptions
from models.train.trainer import Trainer
from service.registry import Registry
from tests.unit.test_train_overfit import CLASSES, make_samples

torch.set_num_threads(1)


def _checkpoint(arch: str = "tiny") -> dict[str, object]:
    torch.manual_seed(0)
    m = build_detector(arch, len(CLASSES)).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a lost buffer would show
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
    return {
        "model_args": m.build_args(),
        "model": m.state_dict(),
        "ema": None,
        "optimizer": {"state": "large, not shipped"},
        "rng": {"python": 1},
        "opts": {"arch": arch, "head": "anchor_free"},
        "class_names": CLASSES,
        "imgsz": 96,
        "spec": m.spec(CLASSES, 96).to_json(),
        "best_metrics": {"map50": 0.42},
        "epoch": 9,
        "data_fingerprint": "abc",
    }


def test_export_weights_are_slim_and_rebuild_the_model(tmp_path: Path) -> None:
    ck = _checkpoint()
    model = model_from_checkpoint(ck)
    card = export_checkpoint(ck, model, tmp_path / "art", weights=True)
    slim = load_checkpoint(tmp_path / "art" / "model.pt")
    assert slim["slim"] and "optimizer" not in slim and "rng" not in slim
    assert all(v.dtype == torch.float16 for v in slim["model"].values() if v.is_floating_point())
    assert len(card["weights_sha256"]) == 64
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        ref = [t.clone() for t in model(x)]
        got = model_from_checkpoint(slim)(x)
    for a, b in zip(ref, got, strict=True):
        assert b.dtype == torch.float32
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=0.05, rtol=0.02)
    assert card == json.loads((tmp_path / "art" / "card.json").read_text())


def test_init_from_registry_ref_warm_starts_training(tmp_path: Path) -> None:
    ck = _checkpoint()
    export_checkpoint(ck, model_from_checkpoint(ck), tmp_path / "art", weights=True)
    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(tmp_path / "art", "tiny-det", alias="production")
    assert (reg.root / "tiny-det" / "1" / "model.pt").is_file()

    (tmp_path / "img").mkdir()
    samples = make_samples(tmp_path / "img", n=4)

    def opts(**kw: object) -> TrainOptions:
        base: dict[str, object] = dict(
            data="",
            arch="tiny",
            epochs=1,
            imgsz=96,
            batch=4,
            out=str(tmp_path / "run"),
            workers=0,
            threads=1,
            augment=False,
            mosaic_prob=0.0,
            close_mosaic=0,
            init_from="tiny-det",
            head="anchor_free",
        )
        base.update(kw)
        return TrainOptions(**base)  # type: ignore[arg-type]

    tr = Trainer(opts(), samples, samples, CLASSES, registry_root=reg.root)
    assert tr.init_from is not None
    assert (tr.init_from["name"], tr.init_from["version"]) == ("tiny-det", 1)
    assert tr.init_from["epochs"] == 10 and tr.init_from["map50"] == 0.42
    want = {
        k: v.float() for k, v in load_checkpoint(reg.root / "tiny-det/1/model.pt")["model"].items()
    }
    for k, v in tr.model.state_dict().items():
        torch.testing.assert_close(v.float(), want[k].to(v.device))
    assert tr.state(0)["init_from"] == tr.init_from  # provenance travels to the card

    with pytest.raises(ValueError, match="not a s-model"):
        o = opts(arch="s-model", out=str(tmp_path / "r2"))
        Trainer(o, samples, samples, CLASSES, registry_root=reg.root)
    with pytest.raises(ValueError, match="classes"):
        o = opts(out=str(tmp_path / "r3"))
        Trainer(o, samples, samples, ["x", "y"], registry_root=reg.root)
    with pytest.raises(FileNotFoundError, match="no torch checkpoint"):
        reg.register(tmp_path / "art", "tiny-det")  # v2 …
        (reg.root / "tiny-det" / "2" / "model.pt").unlink()  # … without its weights
        Trainer(
            opts(init_from="tiny-det:2", out=str(tmp_path / "r4")),
            samples,
            samples,
            CLASSES,
            registry_root=reg.root,
        )


def test_init_from_weights_of_another_carve_out_of_the_same_data_is_refused(
    tmp_path: Path,
) -> None:
    """Weights trained with another --split-seed on the same data have seen part of this
    run's validation images: warm-starting from them would make every reported mAP
    optimistic."""
    data = tmp_path / "data.yaml"
    ck = _checkpoint()
    ck["opts"] = {**ck["opts"], "data": str(data), "seed": 0, "split_seed": 3, "val_fraction": 0.2}
    export_checkpoint(ck, model_from_checkpoint(ck), tmp_path / "art", weights=True)
    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(tmp_path / "art", "tiny-det", alias="production")
    (tmp_path / "img").mkdir()
    samples = make_samples(tmp_path / "img", n=4)  # fingerprint differs from the weights'
    opts = TrainOptions(
        data=str(data),
        arch="tiny",
        epochs=1,
        imgsz=96,
        batch=4,
        out=str(tmp_path / "run"),
        workers=0,
        threads=1,
        augment=False,
        mosaic_prob=0.0,
        close_mosaic=0,
        init_from="tiny-det",
        head="anchor_free",
    )
    with pytest.raises(ValueError, match=r"--split-seed 3 --val-fraction 0\.2"):
        Trainer(opts, samples, samples, CLASSES, registry_root=reg.root)
    other = TrainOptions(**{**opts.to_dict(), "data": str(tmp_path / "new-labels.yaml")})
    warned = Trainer(other, samples, samples, CLASSES, registry_root=reg.root)
    assert warned.init_from is not None  # other data: warns
