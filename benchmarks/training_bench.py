"""REST latency at concurrency 8 with a training job running on the same machine, against
none running, in one run.

    .venv/bin/python -m benchmarks.training_bench [--seconds 15] [--data DATA.yaml]

``lineinspect serve`` runs with its embedded training worker at the default
``trainer_threads`` and ``trainer_nice``; load comes from ``wrk`` (as in
``benchmarks.rest_bench``). Round 1: no job. Round 2: a ``train`` job (s-model on the
data, CPU) is submitted over REST, and load starts once its child is past loading the
data and trains (its log says ``it/epoch``); the job is cancelled afterwards. The load
average before each round is printed: on a busy machine the comparison means little.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import REPO, free_port, sample_jpeg, served
from benchmarks.rest_bench import run_wrk
from service.config import BUNDLED_REGISTRY

NEU_DET_YAML = REPO.parent / "shared" / "datasets" / "neu-det" / "data.yaml"


def _wait_training(url: str, job_id: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            raise RuntimeError(f"job ended before the measurement: {job['error']}")
        log = httpx.get(f"{url}/v1/jobs/{job_id}/log").text
        if job["state"] == "running" and "it/epoch" in log:
            return
        time.sleep(1.0)
    raise TimeoutError("the training job did not start training")


def main() -> None:
    """Both rounds; a markdown table and JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="neu-det-student")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--data", type=Path, default=NEU_DET_YAML)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    image, name = sample_jpeg()
    body = Path(tempfile.mkdtemp()) / name
    body.write_bytes(image)
    data_root = Path(tempfile.mkdtemp(prefix="training-bench-"))
    env = {
        "LINEINSPECT_TRAINER": "auto",
        "LINEINSPECT_DATA_ROOT": str(data_root),
        "LINEINSPECT_TRAINER_METRICS_PORT": str(free_port()),
        "LINEINSPECT_LOG_LEVEL": "WARNING",
    }
    rounds: dict[str, dict[str, float]] = {}
    with served(BUNDLED_REGISTRY, args.model, [], env) as url:
        run_wrk(url, body, 8, 3)  # warm up
        rounds["no training"] = {"load1": os.getloadavg()[0], **run_wrk(url, body, 8, args.seconds)}
        params = {"data": str(args.data), "arch": "s-model", "epochs": 1000, "device": "cpu"}
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "train", "params": params}).json()
        try:
            _wait_training(url, job["id"])
            rounds["training"] = {
                "load1": os.getloadavg()[0],
                **run_wrk(url, body, 8, args.seconds),
            }
        finally:
            httpx.delete(f"{url}/v1/jobs/{job['id']}")
    lines = [
        f"model `{args.model}`, image `{name}`, concurrency 8, {os.cpu_count()} CPUs",
        "",
        "| round | load avg (1 min) before | images/s | p50 ms | p90 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in rounds.items():
        lines.append(
            f"| {label} | {r['load1']:.1f} | {r['rps']:.1f} | {r['p50_ms']:.2f} | "
            f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['non_2xx']:.0f} |"
        )
    print("\n".join(lines))
    print(json.dumps(rounds, indent=2))
    shutil.rmtree(data_root, ignore_errors=True)


if __name__ == "__main__":
    main()
