"""``lineinspect gate`` and ``calibrate --register`` end to end, on a torch-free CLI, with
tiny ONNX detectors and a generated golden folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli import run
from tests.support.golden import write_golden
from tests.support.tiny_onnx import write_artefact


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    """The tiny golden folder: 4 scratch, 1 dent, 2 ok images, 1 unlabelled."""
    return write_golden(tmp_path / "golden")


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """tiny:1 (production) and tiny:2, whose scores all sit far under its threshold."""
    root = tmp_path / "registry"
    root.mkdir()
    run(
        "models",
        "register",
        str(write_artefact(tmp_path / "a1")),
        "--name",
        "tiny",
        "--alias",
        "production",
        "--registry",
        str(root),
    )
    run(
        "models",
        "register",
        str(write_artefact(tmp_path / "a2", bright=1.2)),
        "--name",
        "tiny",
        "--registry",
        str(root),
    )
    return root


def gate(registry: Path, golden: Path, cand: str, *extra: str) -> tuple[int, str, dict[str, Any]]:
    out = golden.parent / "gate.json"
    res = run(
        "gate",
        cand,
        "--production",
        "tiny",
        "--data",
        str(golden / "data.yaml"),
        "--registry",
        str(registry),
        "--out",
        str(out),
        *extra,
        check=False,
    )
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, res.stdout, json.loads(out.read_text())


def test_gate_passes_a_model_against_itself_and_writes_its_card(
    registry: Path, golden: Path
) -> None:
    version_dir = str(registry / "tiny" / "1")  # a directory works as well as a reference
    rc, table, rep = gate(registry, golden, version_dir, "--write-card", "--latency-runs", "30")
    assert rc == 0 and rep["passed"], table
    assert "gate PASSED" in table and "escape scratch" in table
    c, p = rep["candidate"], rep["production"]
    assert rep["golden_images"] == 7 and rep["golden_ok_images"] == 2  # unlabelled left out
    assert c["model"] == p["model"] == "tiny:1"
    assert c["map50"] == p["map50"] and c["map50"] > 0
    assert c["escape"]["scratch"] == {"rate": 0.0, "count": 0, "total": 4}
    assert c["escape"]["dent"] == {"rate": 0.0, "count": 0, "total": 1}  # caught as scratch
    assert c["false_reject"] == {"rate": 0.0, "count": 0, "total": 2}
    assert set(c["latency_ms"]) == {"b1", "b8"} and c["thresholds"]["scratch"] == 0.25
    card = json.loads((registry / "tiny" / "1" / "card.json").read_text())
    assert card["gate"]["passed"] and card["role"] == "student"  # the rest of the card kept


def test_gate_fails_a_low_score_candidate_then_calibrate_fixes_it(
    registry: Path, golden: Path
) -> None:
    rc, table, rep = gate(registry, golden, "tiny:2")
    assert rc == 1 and not rep["passed"] and "gate FAILED" in table
    verdicts = {r["rule"]: r["passed"] for r in rep["results"]}
    assert not verdicts["escape:scratch"] and not verdicts["escape:dent"]
    assert rep["candidate"]["escape"]["scratch"]["rate"] == 1.0  # every defect passes
    assert not (registry / "tiny" / "3").exists()

    res = run(
        "calibrate",
        "tiny:2",
        "--data",
        str(golden),
        "--max-escape",
        "0.05",
        "--register",
        "--registry",
        str(registry),
    )
    assert "registered tiny:3 with class_thresholds" in res.stdout, res.stdout
    assert "too few images" in res.stdout and "unreachable" in res.stdout  # dent, own class
    card = json.loads((registry / "tiny" / "3" / "card.json").read_text())
    thr = card["class_thresholds"]
    assert 0.001 <= thr["scratch"] < 0.25 and thr["dent"] == 0.001
    cal = card["calibration"]
    assert cal["target"] == 0.05 and cal["from"] == "tiny:2"
    assert cal["classes"]["scratch"]["escape"]["rate"] == 0.0
    assert cal["classes"]["scratch"]["escape_before"]["rate"] == 1.0
    assert cal["false_reject"] == {"rate": 0.0, "count": 0, "total": 2}
    # Serving applies the card's thresholds: the calibrated version now passes the gate.
    rc, table, rep = gate(registry, golden, "tiny:3", "--max-latency-ratio", "3")
    assert rc == 0, table
    assert rep["candidate"]["thresholds"]["scratch"] == thr["scratch"]
    assert rep["candidate"]["escape"]["scratch"]["rate"] == 0.0


def test_gate_judges_by_the_gate_rules_setting_and_flags_override_it(
    registry: Path, golden: Path
) -> None:
    cfg = golden.parent / "settings.yaml"
    cfg.write_text("gate_rules: {max_escape_increase: 1.0, max_latency_ratio: 100}\n")
    rc, table, rep = gate(registry, golden, "tiny:2", "--config", str(cfg))
    assert rc == 0 and rep["rules"]["max_escape_increase"] == 1.0, table
    assert rep["rules"]["map50_margin"] == 0.0  # a field the setting leaves out: its default
    rc, table, rep = gate(
        registry, golden, "tiny:2", "--config", str(cfg), "--max-escape-increase", "0.02"
    )
    assert rc == 1 and rep["rules"]["max_escape_increase"] == 0.02
    assert rep["rules"]["max_latency_ratio"] == 100
