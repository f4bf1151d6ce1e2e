"""``torchrun --nproc-per-node 2 ... train``: data-parallel training on the CPU (gloo), a
tiny detector, one epoch. Both ranks train their half of the epoch, the replicas end
with the same weights, and only rank 0 writes the results and checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support.tiny_dataset import tiny_train_params, write_tiny_dataset

REPO = Path(__file__).resolve().parents[2]


def torchrun() -> str:
    found = Path(sys.executable).parent / "torchrun"
    if not found.is_file():
        pytest.fail("torchrun not found beside the interpreter: run `make venv` (torch)")
    return str(found)


def test_two_gloo_processes_train_one_epoch_as_one_run(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "ds")  # 8 training images
    params = tiny_train_params(data, epochs=1) | {"batch": 2, "threads": 1}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    out = tmp_path / "run"
    cmd = [torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "service.cli", "train"]
    proc = subprocess.run(
        [*cmd, *args, "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # Both ranks joined one gloo group and each trained 4 of the 8 images: 2 steps of 2.
    for rank in (0, 1):
        assert f"process {rank} of 2 (local rank {rank}, backend gloo)" in log, log[-4000:]
    assert log.count("on 8 images, 4 val, 2 it/epoch, device cpu") == 2, log[-4000:]
    assert "the 2 data-parallel replicas hold the same weights" in log
    # Rank 0 alone wrote the epoch record, the checkpoints and the summary.
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    assert set(records[0]) >= {"loss_box", "loss_obj", "loss_cls", "map50"}
    assert proc.stdout.count('"out":') == 1
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert ck["epoch"] == 0 and ck["step"] == 2
    assert not any(k.startswith("module.") for k in ck["model"])  # the bare model's weights
    assert (out / "best.pt").is_file()
