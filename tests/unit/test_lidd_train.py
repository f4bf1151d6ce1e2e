"""LIDD-Net through the shared trainer, export and served evaluation: a tiny LIDD-Net
overfits a handful of generated images (high mAP@.5 on themselves, through
DetectionDataset → Trainer → postprocess → evaluate), resumes, and exports with the
re-parameterised graph: the parity check (training graph vs exported ONNX after the
shared post-processing) passes, the card counts the deployed parameters, and
``lineinspect val MODEL.onnx`` scores what the training run measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from models.cli import export, val
from models.data.formats.yolo import write_yolo
from models.detectors import count_params
from models.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from models.train.options import TrainOptions
from models.train.trainer import Trainer
from tests.unit.test_train_overfit import CLASSES, make_samples


@pytest.mark.timeout(300)
def test_lidd_overfit_resume_export(tmp_path: Path) -> None:
    samples = make_samples(tmp_path)
    opts = TrainOptions(
        data="",
        arch="lidd-tiny",
        epochs=80,
        imgsz=96,
        batch=8,
        out=str(tmp_path / "run"),
        workers=0,
        threads=1,
        lr=0.02,
        weight_decay=0.0,
        warmup_epochs=3,
        close_mosaic=0,
        augment=False,
        mosaic_prob=0.0,
        eval_interval=1000,
        adaptive_weights=False,
        ema_decay=0.9,
    )
    tr = Trainer(opts, samples, samples, CLASSES)
    assert tr.loss_names == ("cls", "box", "dfl", "aux") and tr.model.anchors is None
    best = tr.fit()
    assert best["map50"] > 0.75, best

    opts.epochs, opts.resume = 81, True
    tr = Trainer(opts, samples, samples, CLASSES)
    assert tr.start_epoch == 80 and tr.step == 80
    tr.fit()
    assert len((tmp_path / "run" / "results.jsonl").read_text().splitlines()) == 81

    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    model = model_from_checkpoint(ck)
    data = write_yolo(samples, tmp_path / "ds", "val", CLASSES)
    write_yolo(samples, tmp_path / "ds", "train", CLASSES)
    save_checkpoint(tmp_path / "ck.pt", {**ck, "opts": {**ck["opts"], "data": str(data)}})
    res = CliRunner().invoke(export, [str(tmp_path / "ck.pt"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "x" / "card.json").read_text())
    assert card["architecture"] == "lidd-tiny" and card["head"] == "anchor_free"
    assert card["params"] == count_params(model.deploy()) < count_params(model)
    assert card["parity"]["detections"] > 0 and card["parity"]["max_raw_diff"] < 1e-3
    assert abs(card["metrics"]["map50"] - best["map50"]) < 0.02, (card["metrics"], best)

    out = tmp_path / "val.json"
    res = CliRunner().invoke(val, [str(tmp_path / "ck.pt"), "--no-onnx", "--json-out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["params"] == card["params"]  # as deployed
    onnx_path = tmp_path / "x" / "model.onnx"
    res = CliRunner().invoke(
        val, [str(onnx_path), "--data", str(data), "--no-onnx", "--json-out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert abs(json.loads(out.read_text())["map50"] - best["map50"]) < 0.02
