"""ONNX export of a tiny model: contract layout, metadata, dynamic batch, parity, card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from models.detectors import build_detector
from models.export import (
    ExportError,
    check_parity,
    export_checkpoint,
    export_onnx,
    ort_session,
    synthetic_images,
)
from models.processing import SPEC_METADATA_KEY, ModelSpec

torch.set_num_threads(1)  # small tensors: extra threads only add sync cost on a busy CPU


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_detector("tiny", 2).eval()
    # make some rows confident so that parity compares real detections
    with torch.no_grad():
        for p in m.head.obj_preds:
            p.bias.fill_(2.0)
        for p in m.head.cls_preds:
            p.bias.fill_(0.0)
    return m


def test_export_layout_metadata_and_parity(tmp_path: Path) -> None:
    m = _model()
    spec = m.spec(["a", "b"], 96)
    path = export_onnx(m, spec, tmp_path / "model.onnx")
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ModelSpec.from_json(meta[SPEC_METADATA_KEY]) == spec
    sess = ort_session(path)
    assert [i.name for i in sess.get_inputs()] == ["images"]
    assert [o.name for o in sess.get_outputs()] == ["preds"]
    for n in (1, 3):  # dynamic batch
        out = sess.run(["preds"], {"images": np.zeros((n, 3, 96, 96), np.float32)})[0]
        assert out.shape == (n, spec.num_predictions, 7)
    res = check_parity(m, spec, path, synthetic_images(3))
    assert res["detections"] > 0 and res["max_raw_diff"] < 1e-3


def test_parity_failure_is_loud(tmp_path: Path) -> None:
    m = _model()
    spec = m.spec(["a", "b"], 96)
    path = export_onnx(m, spec, tmp_path / "model.onnx")
    with torch.no_grad():
        m.head.reg_preds[0].bias.add_(1.0)  # torch model now differs from the ONNX file
    with pytest.raises(ExportError):
        check_parity(m, spec, path, synthetic_images(2))


def test_export_checkpoint_card(tmp_path: Path) -> None:
    m = _model()
    spec = m.spec(["a", "b"], 96)
    ckpt = {
        "spec": spec.to_json(),
        "opts": {"arch": "s-model"},
        "data_fingerprint": "abc",
        "best_metrics": {
            "map50": 0.5,
            "map50_95": 0.2,
            "per_class": {},
            "best_f1": {"score_thr": 0.35, "precision": 0.8, "recall": 0.6, "f1": 0.69},
        },
    }
    card = export_checkpoint(ckpt, m, tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "card.json").read_text())
    assert on_disk == card
    assert card["role"] == "student" and card["parent"] is None and card["distillation"] is None
    assert card["class_names"] == ["a", "b"] and card["input_size"] == 96
    assert card["metrics"]["map50"] == 0.5 and card["params"] > 0 and card["gflops"] > 0
    assert len(card["onnx_sha256"]) == 64
    assert card["recommended_score_threshold"] == 0.35 and card["metrics"]["best_f1"]["f1"] == 0.69
    card = export_checkpoint(ckpt, m, tmp_path / "out2", score_threshold=0.5)
    assert card["recommended_score_threshold"] == 0.5  # an explicit choice wins
    kd = {"feature_kd": True, "response_kd": False, "attn_temperature": 0.5}
    parent = {"name": "steel-teacher", "version": 3}
    card = export_checkpoint({**ckpt, "distill": kd, "parent": parent}, m, tmp_path / "out3")
    assert card["parent"] == parent and card["distillation"] == kd
    best_f1 = {"score_thr": 0.4, "precision": 0.8, "recall": 0.7, "f1": 0.75}
    fresh = {"map50": 0.6, "map50_95": 0.3, "nms_iou": 0.5, "per_class": {}, "best_f1": best_f1}
    card = export_checkpoint(ckpt, m, tmp_path / "out4", metrics=fresh)
    assert card["metrics"]["map50"] == 0.6 and card["metrics"]["nms_iou"] == 0.5
    assert card["recommended_score_threshold"] == 0.4  # from the fresh evaluation
