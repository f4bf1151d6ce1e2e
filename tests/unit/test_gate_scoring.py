"""score() on a real (tiny) ONNX model: the served verdicts, and the max-score shortcut
calibration relies on, agree at every threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.processing import PostprocessConfig, verdict
from service.config import Settings
from service.gate.escape import failed_at
from service.gate.golden import load_golden
from service.gate.scoring import detect, max_scores, open_session, resolve_model, score
from tests.support.golden import write_golden
from tests.support.tiny_onnx import write_artefact


def test_score_figures_of_the_tiny_model(tmp_path: Path) -> None:
    golden = load_golden(write_golden(tmp_path / "golden"))
    model = resolve_model(str(write_artefact(tmp_path / "m")), tmp_path)
    s = score(model, golden, Settings(providers=["CPUExecutionProvider"]), runs=3)
    assert s.num_images == 7 and s.latency_runs == 3 and set(s.latency_ms) == {"b1", "b8"}
    assert s.escape["scratch"].model_dump() == {"rate": 0.0, "count": 0, "total": 4}
    assert s.false_reject.model_dump() == {"rate": 0.0, "count": 0, "total": 2}
    assert s.thresholds == {"scratch": 0.25, "dent": 0.25}  # no card threshold: fallback
    assert s.per_class_ap50["dent"] == 0.0  # the tiny model only ever says scratch
    assert s.fail_classes is None


@pytest.mark.parametrize("bright", [0.6, 0.9, 1.2])
def test_verdicts_from_max_scores_equal_the_served_verdicts(tmp_path: Path, bright: float) -> None:
    golden = load_golden(write_golden(tmp_path / "golden"))
    model = resolve_model(str(write_artefact(tmp_path / "m", bright=bright)), tmp_path)
    session = open_session(model, Settings(providers=["CPUExecutionProvider"]))
    post = PostprocessConfig.for_classes(session.spec.class_names, None, {}, 0.5, 100)
    low, _ = detect(session, golden, post, 2**26)
    scores = max_scores(low, 2)
    for t in (0.001, 0.005, 0.05, 0.25, 0.5, 0.9, 0.999):
        for thr in (np.array([t, t]), np.array([t, 0.5]), np.array([0.999, t])):
            p = PostprocessConfig(conf_thr=thr.astype(np.float32), iou_thr=0.5, max_det=100)
            _, served = detect(session, golden, p, 2**26)
            want = [verdict(d) == "fail" for d in served]
            assert failed_at(scores, thr, None).tolist() == want, (t, thr)
