"""A real PostgreSQL server per test session: Debian's ``postgresql`` binaries, ``initdb``
in a temp dir, a free loopback port, readiness by ``pg_isready``. ``initdb`` refuses to
run as root, so as root the cluster belongs to the ``postgres`` user (``runuser``).
No binaries → the test fails (never skips).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import free_port
from tests.support.servers import wait_until


def postgres_bin() -> Path:
    """The newest installed ``/usr/lib/postgresql/<v>/bin``; fails the test when none."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        pytest.fail("no PostgreSQL server binaries: install Debian's postgresql package")
    return Path(found[-1]).parent


class PostgresServer:
    """One throw-away cluster; :meth:`url` names a fresh database per call."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.bin = postgres_bin()
        self.port = free_port()
        self._as: list[str] = []
        self._dbs = 0
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as, *args], capture_output=True, text=True, check=False)

    def start(self) -> None:
        """initdb, start on the free port (unix socket in the temp dir), wait for ready."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        res = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed: {res.stderr[-2000:]}")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        res = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.dir / "pg.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )
        if res.returncode != 0:
            log = (self.dir / "pg.log").read_text() if (self.dir / "pg.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {res.stderr[-1000:]} {log[-2000:]}")
        ready = [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
        wait_until(lambda: subprocess.run(ready, capture_output=True).returncode == 0, 30)

    def create_database(self) -> str:
        """A new empty database; returns its ``postgresql://`` URL."""
        self._dbs += 1
        name = f"t{self._dbs}"
        res = self._run(
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            name,
        )
        if res.returncode != 0:
            raise RuntimeError(f"createdb failed: {res.stderr}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop immediately."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole test session (a database per test)."""
    directory = Path(tempfile.mkdtemp(prefix="lineinspect-pg-"))
    os.chmod(directory, 0o755)
    server = PostgresServer(directory / "pg")
    try:
        for attempt in range(3):  # the free port may be taken between probe and bind
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                server.port = free_port()
                shutil.rmtree(server.dir, ignore_errors=True)
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
