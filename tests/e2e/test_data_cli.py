"""``lineinspect data`` as a user drives it (torch unimportable, like a serving-only
install): import, list, show, snapshot, export; then ``lineinspect train`` trains a tiny
model on the snapshot and its checkpoint carries the snapshot's train fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.support.datasets import yolo_folder

TORCHLESS = "import sys; sys.modules['torch'] = None; from service.cli import main; main()"


def data(*args: str, root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", TORCHLESS, "data", *args, "--data-root", str(root)],
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


@pytest.mark.timeout(300)
def test_import_snapshot_export_and_train_on_the_snapshot(tmp_path: Path) -> None:
    src = yolo_folder(tmp_path / "src", 24)
    root = tmp_path / "store"
    out = data("import", str(src), "--dataset", "parts", "--format", "yolo", root=root)
    assert out.stdout.startswith("added 24, duplicates 0, relabelled 0, refused 0")
    again = data("import", str(src), "--dataset", "parts", "--format", "yolo", root=root)
    assert again.stdout.startswith("added 0, duplicates 24, relabelled 0, refused 0")
    assert "parts: 24 samples (labelled 24); 2 classes" in data("list", root=root).stdout
    shown = json.loads(data("show", "parts", root=root).stdout)
    assert shown["samples"] == 24 and shown["classes"] == ["bright", "dark"]
    assert sum(shown["splits"].values()) == 24 and shown["splits"]["golden"] >= 1
    snap = data("snapshot", "parts", root=root).stdout
    yaml_path = Path(snap.strip().rsplit(": ", 1)[1])
    assert snap.startswith("snapshot ") and yaml_path.is_file()
    assert data("snapshot", "parts", root=root).stdout.startswith("unchanged, snapshot ")
    cfg = yaml.safe_load(yaml_path.read_text())
    fingerprint = cfg["lineinspect_snapshot"]["fingerprint"]
    assert fingerprint.startswith(snap.split()[1])
    for fmt, marker in (
        ("labelstudio", "tasks.json"),
        ("yolo", "data.yaml"),
        ("coco", "instances.json"),
    ):
        done = data("export", "parts", "--format", fmt, "--out", str(tmp_path / fmt), root=root)
        assert (tmp_path / fmt / marker).is_file(), done.stderr
    tasks = json.loads((tmp_path / "labelstudio" / "tasks.json").read_text())
    assert len(tasks) == 24 and all(t["annotations"] for t in tasks)
    assert "<RectangleLabels" in (tmp_path / "labelstudio" / "labeling-config.xml").read_text()
    bad = data(
        "import",
        str(tmp_path / "nothing"),
        "--dataset",
        "x",
        "--format",
        "voc",
        root=root,
        check=False,
    )
    assert bad.returncode != 0
    run_dir = tmp_path / "run"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "train",
            "--data",
            str(yaml_path),
            "--arch",
            "tiny",
            "--head",
            "anchor_free",
            "--epochs",
            "2",
            "--imgsz",
            "64",
            "--batch",
            "8",
            "--out",
            str(run_dir),
            "--workers",
            "0",
            "--device",
            "cpu",
            "--mosaic",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    from service.store import Store, datasets, snapshots

    st = Store(root)
    try:
        with st.transaction() as s:
            row = snapshots.get(s, datasets.get(s, "parts"), fingerprint)
            assert ckpt["data_fingerprint"] == row.train_fingerprint
            assert row.counts["train"] >= 1
    finally:
        st.close()
