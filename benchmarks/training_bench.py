"""REST latency at concurrency 8 with a training job running on the same machine, against
none running, in one run.

    .venv/bin/python -m benchmarks.training_bench [--seconds 15] [--rounds 1] [--data DATA.yaml]

``lineinspect serve`` runs with its embedded training worker at the default
``trainer_threads`` and ``trainer_nice``: every job is a real ``lineinspect train`` child
started by the worker as in production (service/jobs: the launcher's niceness, the
thread variables of ``child_environment``); load comes from ``wrk``
(``benchmarks.rest_bench.run_wrk``). Each round measures twice: no job, then a ``train``
job (s-model on the data, CPU) submitted over REST, with load starting once its child
is past loading the data and trains (its log says ``it/epoch``); the job is cancelled
and its child gone before the next round. The load average before each measurement
is printed: on a busy machine the comparison means little.
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
from models.registry import BUNDLED_ROOT

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


def _wait_idle(metrics_url: str, timeout: float = 60) -> None:
    """Until the training worker reports no running job (the child stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(metrics_url).text
        if "\nlineinspect_training_job_running 0.0" in text:
            return
        time.sleep(0.5)
    raise TimeoutError("the cancelled job's child did not stop")


def main() -> None:
    """Both rounds; a markdown table and JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="neu-det-student")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--data", type=Path, default=NEU_DET_YAML)
    ap.add_argument("--rounds", type=int, default=1, help="no job / job pairs")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    image, name = sample_jpeg()
    body = Path(tempfile.mkdtemp()) / name
    body.write_bytes(image)
    data_root = Path(tempfile.mkdtemp(prefix="training-bench-"))
    port = free_port()
    env = {
        "LINEINSPECT_TRAINER": "auto",
        "LINEINSPECT_DATA_ROOT": str(data_root),
        "LINEINSPECT_TRAINER_METRICS_PORT": str(port),
        "LINEINSPECT_LOG_LEVEL": "WARNING",
    }
    rounds: dict[str, dict[str, float]] = {}
    with served(BUNDLED_ROOT, args.model, [], env) as url:
        run_wrk(url, body, 8, 3)  # warm up
        for i in range(1, args.rounds + 1):
            rounds[f"{i}: no training"] = {
                "load1": os.getloadavg()[0],
                **run_wrk(url, body, 8, args.seconds),
            }
            # A new job each round (epochs differ: another idempotency key).
            params = {"data": str(args.data), "arch": "s-model", "epochs": 1000 + i}
            params["device"] = "cpu"
            job = httpx.post(f"{url}/v1/jobs", json={"kind": "train", "params": params}).json()
            try:
                _wait_training(url, job["id"])
                rounds[f"{i}: training"] = {
                    "load1": os.getloadavg()[0],
                    **run_wrk(url, body, 8, args.seconds),
                }
            finally:
                httpx.delete(f"{url}/v1/jobs/{job['id']}")
                _wait_idle(f"http://127.0.0.1:{port}/metrics")
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
