"""Inference workers as real subprocesses (``python -m service.cli worker infer``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.redis_server import free_port
from tests.support.servers import wait_until

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """One ``lineinspect worker infer`` process with its own metrics port and log file."""

    def __init__(
        self,
        name: str,
        registry: Path,
        redis_url: str,
        log_dir: Path,
        models: Sequence[str] = ("tiny",),
        port: int | None = None,
        **settings: object,
    ) -> None:
        self.name, self.port = name, port or free_port()
        self.log_path = log_dir / f"worker-{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINEINSPECT_")}
        env.update({f"LINEINSPECT_{k.upper()}": str(v) for k, v in settings.items()})
        env.update(LINEINSPECT_QUEUE="redis", LINEINSPECT_REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
        args = [
            sys.executable,
            "-m",
            "service.cli",
            "worker",
            "infer",
            "--registry",
            str(registry),
            "--metrics-port",
            str(self.port),
            "--consumer",
            name,
        ]
        for m in models:
            args += ["--model", m]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def url(self) -> str:
        """Base URL of the worker's /metrics, /healthz, /readyz."""
        return f"http://127.0.0.1:{self.port}"

    def is_ready(self) -> bool:
        """Polled by :func:`wait_until`; a dead worker fails at once with its log."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no drain, no delivery of the frames it holds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait (drains), SIGKILL as a last resort."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@contextmanager
def run_workers(
    n: int, registry: Path, redis_url: str, log_dir: Path, first: int = 0, **settings: object
) -> Iterator[list[WorkerProcess]]:
    """Start ``n`` workers at once (consumers ``w{first}``, ``w{first+1}``, ...), wait until
    each is ready, stop them all at the end."""
    workers = [
        WorkerProcess(f"w{first + i}", registry, redis_url, log_dir, **settings) for i in range(n)
    ]
    try:
        for w in workers:
            wait_until(w.is_ready, timeout=90, interval=0.05)
        yield workers
    finally:
        for w in workers:
            w.stop()
