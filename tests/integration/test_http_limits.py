"""HTTP connection limits on real servers: oversized heads refused with 431, slow heads
answered 408 and closed, stalled bodies closed; normal requests unaffected. The same
probes run against the API and against a real ``lineinspect worker infer`` process
(its /metrics, /healthz, /readyz server), both configured by the same settings."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.api.app import create_app
from service.http_limits import HttpLimits, limited_protocol
from service.registry import Registry
from tests.conftest import defect_image, encode
from tests.support.grpc_app import settings_for
from tests.support.http import HTTP
from tests.support.redis_server import running_redis
from tests.support.servers import serve_app
from tests.support.tiny_onnx import write_artefact
from tests.support.workers import run_workers

MAX_HEAD = 8192
HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5
WAIT = 30.0  # how long a test waits for the server to act (a bound, not a sleep)


SETTINGS = {
    "http_max_header_bytes": MAX_HEAD,
    "http_header_timeout_s": HEAD_TIMEOUT,
    "http_body_timeout_s": BODY_TIMEOUT,
}


def make_registry(tmp: Path) -> Path:
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp / "a1"), "tiny", alias="production")
    return reg.root


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = settings_for(make_registry(tmp_path_factory.mktemp("limits-api")), **SETTINGS)
    with serve_app(create_app(settings), http=limited_protocol(HttpLimits.of(settings))) as u:
        yield u


@pytest.fixture(scope="module")
def worker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A worker subprocess: its own ``run_worker`` must apply the limits."""
    tmp: Path = tmp_path_factory.mktemp("limits-worker")
    with (
        running_redis(tmp / "redis") as redis,
        run_workers(1, make_registry(tmp), redis.url, tmp, warmup_runs=1, **SETTINGS) as (w,),
    ):
        yield w.url


@pytest.fixture(params=["api", "worker"])
def url(request: pytest.FixtureRequest) -> str:
    """The API, then the worker: the probes that apply to both."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=WAIT)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_head_within_the_limit_is_served(url: str) -> None:
    r = HTTP.get(url + "/healthz", headers={f"x-pad-{i}": "v" * 100 for i in range(40)})
    assert r.status_code == 200


@pytest.mark.parametrize("pieces", [1, 64], ids=["at-once", "in-pieces"])
def test_an_oversized_head_is_refused_431(url: str, pieces: int) -> None:
    with connect(url) as sock:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * MAX_HEAD) + b"\r\n\r\n"
        step = -(-len(head) // pieces)
        try:
            for i in range(0, len(head), step):
                sock.sendall(head[i : i + step])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole head was sent
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert HTTP.get(url + "/readyz").status_code == 200


def test_a_slow_head_is_answered_408_and_closed(url: str) -> None:
    with connect(url) as sock:
        t0 = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        answer = read_all(sock)
        elapsed = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert HEAD_TIMEOUT * 0.9 <= elapsed < WAIT


def test_an_idle_new_connection_is_closed(url: str) -> None:
    with connect(url) as sock:
        t0 = time.monotonic()
        read_all(sock)
        assert HEAD_TIMEOUT * 0.9 <= time.monotonic() - t0 < WAIT


def test_a_stalled_body_is_closed(api_url: str) -> None:
    """(The API only: no route of the worker reads a body.)"""
    with connect(api_url) as sock:
        t0 = time.monotonic()
        sock.sendall(
            b"POST /v1/inspect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\xff\xd8" * 8
        )
        answer = read_all(sock)
        elapsed = time.monotonic() - t0
    assert b" 200 " not in answer
    assert BODY_TIMEOUT * 0.9 <= elapsed < WAIT
    assert HTTP.get(api_url + "/readyz").status_code == 200


def test_a_normal_upload_still_works(api_url: str) -> None:
    r = HTTP.post(
        api_url + "/v1/inspect",
        content=encode(defect_image()),
        headers={"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 200 and r.json()["verdict"] == "fail"


def test_a_normal_scrape_still_works(url: str) -> None:
    r = HTTP.get(url + "/metrics")
    assert r.status_code == 200 and "lineinspect_" in r.text
