"""A real, throw-away PostgreSQL server for tests (Debian's postgresql package).

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user
in a directory it owns. Trust authentication on 127.0.0.1, a free port, the socket in
the data directory; removed on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.support.redis_server import free_port
from tests.support.servers import wait_until


def pg_bin() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    base = Path("/usr/lib/postgresql")
    versions = sorted(base.iterdir(), key=lambda p: int(p.name)) if base.is_dir() else []
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return versions[-1] / "bin"


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """Start a server; yield its ``postgresql://`` URL."""
    root = Path(tempfile.mkdtemp(prefix="lineinspect-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    bin_dir, port = pg_bin(), free_port()
    subprocess.run(
        _as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                   "--auth=trust", "-E", "UTF8"]),
        check=True, capture_output=True,
    )  # fmt: skip
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        _as_owner([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(data),
                   "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def accepting() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            with psycopg.connect(url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    try:
        wait_until(accepting, timeout=60, interval=0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
