"""A real overfit: a tiny detector learns a handful of generated images (bright/dark
rectangles on grey) and scores high mAP@.5 on them through the real path
(DetectionDataset → Trainer → postprocess → evaluate_detections); then resume works,
and the exported ONNX scores the same through ``lineinspect val MODEL.onnx``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from models.cli import export, val
from models.data import Sample
from models.data.formats.yolo import write_yolo
from models.export import export_onnx
from models.processing import ModelSpec
from models.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from models.train.options import TrainOptions
from models.train.trainer import Trainer
from tests.support.datasets import CLASSES, samples


def make_samples(root: Path, n: int = 8, size: int = 96, seed: int = 0) -> list[Sample]:
    """``n`` grey images with two rectangles each: class 0 bright, class 1 dark."""
    return samples(root, n, seed=seed, size=size)


@pytest.mark.timeout(240)
def test_overfit_and_resume(tmp_path: Path) -> None:
    samples = make_samples(tmp_path)
    opts = TrainOptions(
        data="",
        arch="tiny",
        head="anchor_free",
        epochs=70,
        imgsz=96,
        batch=8,
        out=str(tmp_path / "run"),
        workers=0,
        threads=1,  # 2 threads on a busy 2-core machine are ~20x slower
        lr=6e-3,
        weight_decay=0.0,
        warmup_epochs=3,
        close_mosaic=0,
        augment=False,
        mosaic_prob=0.0,
        eval_interval=1000,
        adaptive_weights=True,
        ema_decay=0.9,
        cache=True,
    )
    best = Trainer(opts, samples, samples, CLASSES).fit()
    assert best["map50"] > 0.8, best
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "best.pt").exists()

    # resume: a finished run continued to more epochs starts where it stopped
    opts.epochs, opts.resume = 71, True
    tr = Trainer(opts, samples, samples, CLASSES)
    assert tr.start_epoch == 70 and tr.step == 70
    tr.fit()
    lines = (tmp_path / "run" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 71

    # The exported ONNX scores the same through `lineinspect val MODEL.onnx --data`
    # (ONNX Runtime + the serving pre/post-processing) as the checkpoint did in training.

    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    onnx_path = export_onnx(
        model_from_checkpoint(ck), ModelSpec.from_json(ck["spec"]), tmp_path / "m.onnx"
    )
    write_yolo(samples, tmp_path / "ds", "train", CLASSES)
    data = write_yolo(samples, tmp_path / "ds", "val", CLASSES)
    out = tmp_path / "val.json"
    res = CliRunner().invoke(
        val, [str(onnx_path), "--data", str(data), "--no-onnx", "--json-out", str(out)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert abs(report["map50"] - best["map50"]) < 0.02, (report["map50"], best)
    missing = CliRunner().invoke(val, [str(onnx_path)])
    assert missing.exit_code != 0 and "--data is required" in missing.output

    # `lineinspect export` writes a fresh evaluation into the card (at the served NMS
    # IoU), and keeps the run's own metrics when the checkpoint's data is not here.
    # A stale stored evaluation must not reach the card when the data is here.
    stale = {**ck["best_metrics"], "map50": -1.0}
    save_checkpoint(
        tmp_path / "with-data.pt",
        {**ck, "opts": {**ck["opts"], "data": str(data)}, "best_metrics": stale},
    )
    for src in (tmp_path / "with-data.pt", tmp_path / "run" / "best.pt"):
        res = CliRunner().invoke(export, [str(src), "--out", str(tmp_path / f"x-{src.stem}")])
        assert res.exit_code == 0, res.output
        card = json.loads((tmp_path / f"x-{src.stem}" / "card.json").read_text())
        assert abs(card["metrics"]["map50"] - best["map50"]) < 0.02, (src, card["metrics"])
        assert card["metrics"]["nms_iou"] == 0.5
