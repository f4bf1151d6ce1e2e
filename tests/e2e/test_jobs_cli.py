"""``lineinspect jobs ...`` and ``worker train`` driven as a user would, on a
serving-only install (torch cannot be imported), on a SQLite database in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.datasets import yolo_folder

TORCHLESS = "import sys; sys.modules['torch'] = None; from service.cli import main; main()"


def run(data_root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LINEINSPECT_DATA_ROOT": str(data_root)}
    return subprocess.run(
        [sys.executable, "-c", TORCHLESS, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        env=env,
    )


def test_jobs_submit_list_show_cancel_logs(tmp_path: Path) -> None:
    root = tmp_path / "var"
    args = ("jobs", "submit", "train", "-p", "data=/d/data.yaml", "-p", "epochs=3")
    first = run(root, *args)
    job = json.loads(first.stdout)
    assert "queued job 1" in first.stderr and job["params"]["epochs"] == 3  # YAML: a number
    again = run(root, *args)
    assert "already asked: job 1" in again.stderr and json.loads(again.stdout)["id"] == 1
    listed = run(root, "jobs", "list", "--state", "queued")
    assert listed.stdout.startswith("1\ttrain\tqueued\t-\t-\t") and "1 of 1" in listed.stderr
    assert json.loads(run(root, "jobs", "show", "1").stdout)["state"] == "queued"
    assert run(root, "jobs", "cancel", "1").stdout.strip() == "job 1: cancelled"
    assert run(root, "jobs", "logs", "1").stdout == ""  # never ran: no log
    missing = run(root, "jobs", "show", "7", check=False)
    assert missing.returncode != 0 and "job 7 does not exist" in missing.stderr
    bad = run(root, "jobs", "submit", "train", "-p", "threads=4", check=False)
    assert bad.returncode != 0 and "set by the worker" in bad.stderr
    assert (root / "lineinspect.db").is_file()


def test_jobs_submit_pipeline_on_a_store_dataset(tmp_path: Path) -> None:
    root = tmp_path / "var"
    src = str(yolo_folder(tmp_path / "src", 6))
    run(root, "data", "import", src, "--dataset", "parts", "--format", "yolo")
    args = ("jobs", "submit", "pipeline", "-p", "lineage=parts-student", "-p", "dataset=parts")
    first = run(root, *args, "-p", "student_epochs=5")
    job = json.loads(first.stdout)
    assert "queued job 1" in first.stderr and job["snapshot"].startswith("store:")
    assert job["params"]["student_epochs"] == 5
    again = run(root, *args, "-p", "student_epochs=5")
    assert "already asked: job 1" in again.stderr
    busy = run(root, *args, "-p", "student_epochs=6", check=False)
    assert busy.returncode != 0 and "one pipeline at a time" in busy.stderr
    nodata = run(
        root, "jobs", "submit", "pipeline", "-p", "lineage=x", "-p", "dataset=nowhere", check=False
    )
    assert nodata.returncode != 0 and "no dataset 'nowhere'" in nodata.stderr


def test_worker_train_says_it_needs_the_training_extra(tmp_path: Path) -> None:
    r = run(tmp_path / "var", "worker", "train", check=False)
    assert r.returncode != 0 and "needs the training extra" in r.stderr
