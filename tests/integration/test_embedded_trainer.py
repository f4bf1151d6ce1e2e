"""``lineinspect serve`` with ``trainer=auto`` (torch installed) runs one training
worker as a child process: it claims jobs submitted over REST, the serving process
itself never loads torch, and the worker dies with the server, even a SIGKILLed one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from service.registry import Registry
from tests.support.http import HTTP
from tests.support.redis_server import free_port
from tests.support.servers import wait_until
from tests.support.tiny_dataset import tiny_train_params, write_tiny_dataset
from tests.support.trainers import pid_alive


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _env(data_root: Path, trainer_port: int, **extra: str) -> dict[str, str]:
    settings = {
        "TRAINER": "auto",
        "DATA_ROOT": str(data_root),
        "WARMUP_RUNS": "1",
        "TRAINER_METRICS_PORT": str(trainer_port),
        **extra,
    }
    return {**os.environ, **{f"LINEINSPECT_{k}": v for k, v in settings.items()}}


def _pid(trainer: str) -> int:
    """The pid in the worker's default id, ``<host>-<pid>``."""
    return int(re.findall(r"-(\d+)$", httpx.get(trainer + "/readyz").json()["worker"])[0])


def _maps_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def test_serve_runs_a_training_worker_that_dies_with_it(
    tiny_registry: Registry, tmp_path: Path
) -> None:
    rest, trainer_port = free_port(), free_port()
    env = _env(tmp_path, trainer_port, TRAINER_POLL_S="0.2", TRAINER_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--registry",
        str(tiny_registry.root),
        "--model",
        "tiny",
        "--port",
        str(rest),
    ]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    api, trainer = f"http://127.0.0.1:{rest}", f"http://127.0.0.1:{trainer_port}"
    try:
        wait_until(lambda: _ready(api + "/readyz") and _ready(trainer + "/readyz"), timeout=90)
        worker = httpx.get(trainer + "/readyz").json()["worker"]
        worker_pid = _pid(trainer)
        r = HTTP.post(
            api + "/v1/jobs",
            json={
                "kind": "train",
                "params": tiny_train_params(write_tiny_dataset(tmp_path / "ds"), 2),
            },
        )
        assert r.status_code == 201, r.text
        job_url = f"{api}/v1/jobs/{r.json()['id']}"
        wait_until(
            lambda: HTTP.get(job_url).json()["state"] in ("succeeded", "failed"),
            timeout=120,
            interval=0.2,
        )
        done = HTTP.get(job_url).json()
        assert done["state"] == "succeeded" and done["worker"] == worker, done
        assert not _maps_torch(proc.pid) and not _maps_torch(worker_pid)  # torch: children only
        os.kill(worker_pid, signal.SIGKILL)  # a crashed worker is restarted

        def replaced() -> bool:
            try:
                return _ready(trainer + "/readyz") and _pid(trainer) != worker_pid
            except httpx.HTTPError:
                return False

        wait_until(replaced, timeout=60, interval=0.2)
        restarted = _pid(trainer)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: not pid_alive(restarted), timeout=5, interval=0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_serve_stops_its_training_worker_on_shutdown(
    tiny_registry: Registry, tmp_path: Path
) -> None:
    rest, trainer_port = free_port(), free_port()
    env = _env(tmp_path, trainer_port)
    cmd = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--registry",
        str(tiny_registry.root),
        "--model",
        "tiny",
        "--port",
        str(rest),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    trainer = f"http://127.0.0.1:{trainer_port}"
    try:
        wait_until(lambda: _ready(trainer + "/readyz"), timeout=90)
        worker_pid = _pid(trainer)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM)
    assert not pid_alive(worker_pid)
    assert b"embedded training worker stopped" in out, out[-2000:]
