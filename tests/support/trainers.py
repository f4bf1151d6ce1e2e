"""Training workers as real subprocesses (``python -m service.cli worker train``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from service.api.app import create_app
from service.config import load_settings
from tests.support.http import HTTP
from tests.support.redis_server import free_port
from tests.support.servers import serve_app

REPO = Path(__file__).resolve().parents[2]


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class TrainerProcess:
    """One ``lineinspect worker train`` with its own metrics port and log file."""

    def __init__(self, name: str, data_root: Path, log_dir: Path, **settings: object) -> None:
        self.name, self.port = name, free_port()
        self.log_path = log_dir / f"trainer-{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINEINSPECT_")}
        env.update({f"LINEINSPECT_{k.upper()}": str(v) for k, v in settings.items()})
        env.update(LINEINSPECT_DATA_ROOT=str(data_root), PYTHONUNBUFFERED="1")
        args = [
            sys.executable,
            "-m",
            "service.cli",
            "worker",
            "train",
            "--metrics-port",
            str(self.port),
            "--worker-id",
            name,
        ]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def url(self) -> str:
        """Base URL of /metrics, /healthz, /readyz."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """The worker's output so far."""
        return self.log_path.read_text(errors="replace")

    def is_ready(self) -> bool:
        """Polled by ``wait_until``; a dead worker fails at once with its log."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"trainer {self.name} exited: {self.log()[-3000:]}")
        try:
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        """Its /metrics text."""
        return httpx.get(self.url + "/metrics", timeout=5).text

    def kill(self) -> None:
        """SIGKILL: no hand-back, no cleanup."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait, SIGKILL as a last resort."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@contextmanager
def jobs_api(
    registry_root: Path, data_root: Path, database_url: str | None = None
) -> Iterator[str]:
    """A serving API on the tiny model with no embedded trainer: the tests' workers are
    their own processes; jobs are submitted to and read from its ``/v1/jobs``."""
    settings = load_settings(
        None,
        registry_root=registry_root,
        models=["tiny"],
        warmup_runs=1,
        data_root=data_root,
        database_url=database_url,
        trainer="off",
    )
    with serve_app(create_app(settings)) as url:
        yield url


def job(api: str, job_id: int) -> dict[str, Any]:
    """``GET /v1/jobs/{job_id}``, asserted 200."""
    r = HTTP.get(f"{api}/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())
