"""Drive the ``lineinspect`` CLI as a user would, in real subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import defect_image, encode
from tests.support.http import HTTP
from tests.support.servers import wait_until
from tests.support.tiny_onnx import write_artefact

# Every serving command runs as on a serving-only install: torch cannot be imported.
TORCHLESS = "import sys; sys.modules['torch'] = None; from service.cli import main; main()"
CLI = [sys.executable, "-c", TORCHLESS]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=check, timeout=120)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    root.mkdir()
    out = run(
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
    assert "registered tiny:1 (production)" in out.stdout
    run(
        "models",
        "register",
        str(write_artefact(tmp_path / "a2", hot_class=1)),
        "--name",
        "tiny",
        "--registry",
        str(root),
    )
    return root


def test_models_list_show_promote(registry: Path) -> None:
    out = run("models", "list", "--registry", str(registry)).stdout
    assert "tiny" in out and "versions=[1, 2]" in out and "production=1" in out
    card = json.loads(run("models", "show", "tiny:2", "--registry", str(registry)).stdout)
    assert card["version"] == 2 and card["role"] == "student" and len(card["onnx_sha256"]) == 64
    out = run("models", "promote", "tiny", "2", "--registry", str(registry)).stdout
    assert "tiny@production: 1 -> 2" in out
    bad = run("models", "promote", "tiny", "7", "--registry", str(registry), check=False)
    assert bad.returncode != 0 and "no version 7" in bad.stderr


def test_predict_directory_writes_one_record_per_image(registry: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(encode(defect_image(300, 200, (100, 50, 160, 150))))
    (images / "b.png").write_bytes(encode(defect_image(box=(0, 0, 0, 0)), "PNG"))
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "preds.json"
    run("predict", str(images), "--model", "tiny", "--out", str(out), "--registry", str(registry))
    records = json.loads(out.read_text())
    assert [r["image"] for r in records] == ["a.jpg", "b.png"]
    a, b = records
    assert a["verdict"] == "fail" and b["verdict"] == "pass" and b["detections"] == []
    for det in a["detections"]:
        x1, y1, x2, y2 = det["box"]  # original pixels of the 300x200 image
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2  # the tiny model's boxes are grid cells
        assert 60 <= cx <= 200 and 10 <= cy <= 190 and x2 <= 300 and y2 <= 200
    assert set(a) == {
        "image",
        "frame_id",
        "line",
        "camera",
        "model",
        "verdict",
        "detections",
        "timing_ms",
    }
    missing = run(
        "predict", str(tmp_path / "nothing*.jpg"), "--registry", str(registry), check=False
    )
    assert missing.returncode != 0 and "no images found" in missing.stderr


def test_predict_skips_a_corrupt_image_and_keeps_the_rest(registry: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    good = encode(defect_image(300, 200, (100, 50, 160, 150)))
    (images / "a.jpg").write_bytes(good)
    (images / "b.jpg").write_bytes(good[: len(good) // 3])  # a truncated upload
    (images / "c.png").write_bytes(encode(defect_image(box=(0, 0, 0, 0)), "PNG"))
    out = tmp_path / "preds.json"
    res = run(
        "predict",
        str(images),
        "--model",
        "tiny",
        "--out",
        str(out),
        "--batch",
        "3",
        "--registry",
        str(registry),
        check=False,
    )
    assert res.returncode == 1, res.stderr
    assert "skipped" in res.stderr and "b.jpg" in res.stderr
    assert "1 of 3 images could not be read" in res.stderr
    records = json.loads(out.read_text())
    assert [r["image"] for r in records] == ["a.jpg", "c.png"]
    for r in records:  # measured, not placeholders
        t = r["timing_ms"]
        assert t["queue"] == 0 and 0 < t["inference"] <= t["total"], t


def test_predict_score_threshold_flag(registry: Path, tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(defect_image(300, 200, (100, 50, 160, 150))))

    def scores(*flags: str) -> list[float]:
        out = tmp_path / "p.json"
        run(
            "predict",
            str(image),
            "--model",
            "tiny",
            "--out",
            str(out),
            "--registry",
            str(registry),
            *flags,
        )
        return [d["score"] for d in json.loads(out.read_text())[0]["detections"]]

    default, low, high = (
        scores(),
        scores("--score-threshold", "0.001"),
        scores("--score-threshold", "0.999"),
    )
    assert len(low) > len(default) > len(high) == 0
    assert min(low) < min(default)
    bad = run(
        "predict", str(image), "--score-threshold", "2", "--registry", str(registry), check=False
    )
    assert bad.returncode != 0 and "score-threshold" in bad.stderr


def test_serve_answers_and_stops_cleanly(registry: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "serve", "--registry", str(registry), "--model", "tiny", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LINEINSPECT_WARMUP_RUNS": "1"},
    )
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            m = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m[1])
                break
        assert port, "server did not report its port"
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: HTTP.get(url + "/readyz").status_code == 200)
        r = HTTP.post(
            url + "/v1/inspect",
            content=encode(defect_image()),
            headers={"Content-Type": "image/jpeg"},
        )
        assert r.status_code == 200 and r.json()["model"]["name"] == "tiny"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    # uvicorn drains, then re-raises the signal it caught, so the exit status is -SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in rest


def test_bad_configuration_names_the_setting(registry: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("max_batch: 0\nscore_threshold: 3\n")
    r = run("serve", "--config", str(cfg), "--registry", str(registry), check=False)
    assert r.returncode != 0
    assert "max_batch" in r.stderr and "score_threshold" in r.stderr
    r = run("serve", "--registry", str(registry), "--model", "nope", check=False)
    assert r.returncode != 0 and "no model named 'nope'" in r.stderr


def test_serving_install_lists_training_commands_and_says_what_they_need(tmp_path: Path) -> None:
    helped = run("--help")
    for name in ("serve", "predict", "models", "train", "val", "export", "distil"):
        assert f"  {name} " in helped.stdout, name
    data = tmp_path / "data.yaml"
    data.write_text("path: .\ntrain: images\nnames: [a]\n")
    for args in (("train", "--data", str(data), "--out", str(tmp_path / "run")), ("distil",)):
        res = run(*args, check=False)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        assert "needs the training extra (pip install 'lineinspect[train]')" in res.stderr
