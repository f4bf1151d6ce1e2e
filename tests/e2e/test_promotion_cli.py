"""``lineinspect models promote|history|rollback`` as a user drives them, against a
running ``lineinspect serve`` sharing the registry and the store: every CLI move is in
the history (CLI and REST) and the server hot-swaps to it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import HTTP
from tests.support.load import inspect_once
from tests.support.servers import wait_until
from tests.support.tiny_onnx import write_artefact

TORCHLESS = "import sys; sys.modules['torch'] = None; from service.cli import main; main()"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    root = tmp_path / "registry"
    root.mkdir()
    return {
        **os.environ,
        "LINEINSPECT_REGISTRY_ROOT": str(root),
        "LINEINSPECT_DATA_ROOT": str(tmp_path / "var"),
        "LINEINSPECT_WARMUP_RUNS": "1",
        "LINEINSPECT_REGISTRY_POLL_S": "0.05",
    }


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", TORCHLESS, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        env=env,
    )


@pytest.fixture
def served(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    for i, alias in ((1, ("--alias", "production")), (2, ())):
        art = write_artefact(tmp_path / f"a{i}", hot_class=i - 1)
        run(env, "models", "register", str(art), "--name", "tiny", *alias)
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", TORCHLESS, "serve", "--model", "tiny", "--port", "0"],
            stderr=err,
            env=env,
        )
    try:
        found: list[str] = []

        def port_logged() -> bool:
            assert proc.poll() is None, log.read_text()
            found[:] = re.findall(r"running on http://127\.0\.0\.1:(\d+)", log.read_text())
            return bool(found)

        wait_until(port_logged, timeout=60)
        url = f"http://127.0.0.1:{found[0]}"
        wait_until(lambda: HTTP.get(url + "/readyz").status_code == 200, timeout=60)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_cli_moves_are_recorded_served_and_rolled_back(env: dict[str, str], served: str) -> None:
    def version() -> int:
        return int(inspect_once(served)[1]["model"]["version"])

    assert version() == 1
    out = run(env, "models", "promote", "tiny", "2", "--reason", "new labels").stdout
    assert out.strip() == "tiny@production: 1 -> 2"
    wait_until(lambda: version() == 2)

    out = run(env, "models", "rollback", "tiny", "--reason", "dents on L2").stdout
    assert out.strip() == "tiny@production: 2 -> 1"
    wait_until(lambda: version() == 1)

    lines = run(env, "models", "history", "tiny").stdout.splitlines()
    fields = [line.split("\t") for line in lines]
    assert [(f[2], f[3], f[5]) for f in fields] == [
        ("production", "2 -> 1", "rollback"),
        ("production", "1 -> 2", "manual"),
        ("production", "None -> 1", "register"),
    ]
    assert all(f[4].startswith("cli:") for f in fields)
    rows = [
        json.loads(x) for x in run(env, "models", "history", "tiny", "--json").stdout.splitlines()
    ]
    assert rows[0]["details"] == {"reason": "dents on L2", "from": 2, "source": "history"}
    assert rows[1]["details"] == {"reason": "new labels"}

    rest = HTTP.get(served + "/v1/models/tiny/history").json()["items"]
    assert rest == rows  # the same rows over REST, newest first

    # rolling back again goes to the version production had before its last move
    assert run(env, "models", "rollback", "tiny").stdout.strip() == "tiny@production: 1 -> 2"
    missing = run(env, "models", "history", "nope", check=False)
    assert missing.returncode != 0 and "no model named 'nope'" in missing.stderr
