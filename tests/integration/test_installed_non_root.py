"""The API and a worker as the images run them: an installed copy, a non-root user.

The package is installed (``pip install --no-deps --target``) from exactly what the
Dockerfiles copy, and both processes run as an unprivileged user (``setpriv``) with that
copy first on ``PYTHONPATH`` (the venv supplies the dependencies) and a writable
working directory (the data dir).
Against a registry owned by root (read-only for that user) a promotion answers 503
``registry_read_only`` in the documented error shape, never a bare 500; against a
registry seeded into a directory the user owns (what registry-init and the k8s init
container do) it succeeds and the worker hot-swaps to the promoted version.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.registry import Registry
from tests.support.redis_server import RedisServer, free_port, redis_server
from tests.support.servers import wait_until
from tests.support.tiny_onnx import write_artefact

__all__ = ["redis_server"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[2]
USER = "lineinspect-test"
COPIED = ["pyproject.toml", "constraints.txt", "README.md", "service", "models", "proto"]
SEED = ROOT / "deploy" / "seed-registry.sh"


def service_user() -> pwd.struct_passwd:
    """The unprivileged user, created when missing (the tests run as root, as CI does)."""
    if os.geteuid() != 0:
        pytest.fail("this test runs the service as another user: run the suite as root")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
        )
        return pwd.getpwnam(USER)


def as_user(user: pwd.struct_passwd) -> list[str]:
    """``setpriv`` to the user. When the venv's interpreter lives where the user cannot
    run it as the same python (e.g. a pyenv build under /root, 0700), the user also gets
    CAP_DAC_READ_SEARCH:
    it may then read and traverse any file, but every write still needs a write
    permission, which is what this test is about."""
    base = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    probe = [sys.executable, "-c", "import sys; print(sys.version)"]
    plain = subprocess.run([*base, *probe], capture_output=True, text=True)
    if plain.returncode == 0 and plain.stdout.strip() == sys.version:
        return base
    return [*base, "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """The package installed from a copy of what the Dockerfiles copy."""
    top = Path(tempfile.mkdtemp(prefix="lineinspect-installed-", dir="/tmp"))
    top.chmod(0o755)
    src = top / "src"
    src.mkdir()
    for name in COPIED:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(top / "site"),
            str(src),
        ],
        check=True,
        timeout=600,
    )
    try:
        yield top / "site"
    finally:
        shutil.rmtree(top, ignore_errors=True)


class Proc:
    """One lineinspect process run as the unprivileged user, logging to a file."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=out)

    def ready(self, url: str) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        try:
            return httpx.get(url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def make_registry(root: Path) -> None:
    reg = Registry(root)
    root.mkdir()
    work = Path(tempfile.mkdtemp())
    reg.register(write_artefact(work / "a1"), "tiny", alias="production")
    reg.register(write_artefact(work / "a2", hot_class=1), "tiny")
    shutil.rmtree(work)


def run_stack(
    installed: Path, tmp: Path, registry: Path, redis: RedisServer
) -> tuple[str, str, list[Proc]]:
    user = service_user()
    data = tmp / f"data-{registry.name}"
    data.mkdir()
    os.chown(data, user.pw_uid, user.pw_gid)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(data),
        "PYTHONPATH": str(installed),
        "PYTHONUNBUFFERED": "1",
        "LINEINSPECT_QUEUE": "redis",
        "LINEINSPECT_REDIS_URL": redis.url,
        "LINEINSPECT_REGISTRY_ROOT": str(registry),
        "LINEINSPECT_MODELS": '["tiny"]',
        "LINEINSPECT_REGISTRY_POLL_S": "0.1",
        "LINEINSPECT_WARMUP_RUNS": "1",
        "LINEINSPECT_PROVIDERS": '["CPUExecutionProvider"]',
        "LINEINSPECT_STRICT_PROVIDERS": "1",
    }
    python = [*as_user(user), sys.executable]
    where = subprocess.run(
        [*python, "-c", "import service; print(service.__file__)"],
        env=env,
        cwd=data,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(installed)), where.stdout + where.stderr
    cli = [*python, "-m", "service.cli"]
    api_port, worker_port = free_port(), free_port()
    api = Proc(
        [*cli, "serve", "--port", str(api_port)], data, env, tmp / f"api-{registry.name}.log"
    )
    worker = Proc(
        [*cli, "worker", "infer", "--metrics-port", str(worker_port)],
        data,
        env,
        tmp / f"worker-{registry.name}.log",
    )
    api_url, worker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{worker_port}"
    try:
        wait_until(lambda: api.ready(api_url), timeout=120, interval=0.1)
        wait_until(lambda: worker.ready(worker_url), timeout=120, interval=0.1)
    except BaseException:
        api.stop()
        worker.stop()
        raise
    return api_url, worker_url, [api, worker]


def test_promotion_on_a_root_owned_registry_is_a_clear_503(
    installed: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    tmp = Path(tempfile.mkdtemp(dir="/tmp"))
    tmp.chmod(0o755)
    registry = tmp / "registry-root-owned"
    make_registry(registry)  # created by root: 0755 directories, 0644 files
    api_url, worker_url, procs = run_stack(installed, tmp, registry, redis_server)
    try:
        body = httpx.get(worker_url + "/readyz").json()
        assert body["models"][0]["version"] == 1
        r = httpx.put(api_url + "/v1/models/tiny/aliases/production", json={"version": 2})
        assert r.status_code == 503, r.text
        err = r.json()
        assert set(err) == {"error", "message", "request_id"} and err["request_id"]
        assert err["error"] == "registry_read_only"
        uid = service_user().pw_uid
        assert (
            f"not writable by uid {uid}" in err["message"] and "Permission denied" in err["message"]
        )
        assert Registry(registry).aliases("tiny") == {"production": 1}
        log = (tmp / f"api-{registry.name}.log").read_text()
        assert "Traceback" not in log
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_promotion_on_a_seeded_registry_succeeds_and_the_worker_swaps(
    installed: Path, redis_server: RedisServer
) -> None:
    tmp = Path(tempfile.mkdtemp(dir="/tmp"))
    tmp.chmod(0o755)
    bundled = tmp / "bundled"
    make_registry(bundled)  # the image's read-only copy
    volume = tmp / "registry-volume"
    volume.mkdir()
    user = service_user()
    os.chown(volume, user.pw_uid, user.pw_gid)
    seeded = subprocess.run(
        [*as_user(user), "sh", str(SEED), str(bundled), str(volume)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seeded.returncode == 0 and "copied tiny" in seeded.stdout, seeded.stderr
    api_url, worker_url, procs = run_stack(installed, tmp, volume, redis_server)
    try:
        r = httpx.put(api_url + "/v1/models/tiny/aliases/production", json={"version": 2})
        assert r.status_code == 200, r.text
        assert r.json()["previous"] == 1

        def swapped() -> bool:
            models = httpx.get(worker_url + "/readyz").json()["models"]
            return [m["version"] for m in models] == [2]

        wait_until(swapped, timeout=60, interval=0.1)
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_seeding_an_unwritable_volume_names_the_uid(tmp_path: Path) -> None:
    user = service_user()
    tmp = Path(tempfile.mkdtemp(dir="/tmp"))
    tmp.chmod(0o755)
    try:
        make_registry(tmp / "bundled")
        (tmp / "volume").mkdir()  # root's, as a fresh hostPath or bind mount is
        proc = subprocess.run(
            [*as_user(user), "sh", str(SEED), str(tmp / "bundled"), str(tmp / "volume")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1
        assert f"not writable by uid {user.pw_uid}" in proc.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
