"""Shared benchmark helpers: raw ONNX Runtime throughput, a served instance, a sample image."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from models.processing import batch_inputs
from models.registry import BUNDLED_ROOT
from service.engine import ModelSession
from service.inspector import prepare
from service.registry import Registry

REPO = Path(__file__).resolve().parent.parent
NEU_DET = REPO.parent / "shared" / "datasets" / "neu-det" / "images" / "train"


def sample_jpeg() -> tuple[bytes, str]:
    """A real NEU-DET image when ../shared is present, else a synthetic 200x200 JPEG."""
    if NEU_DET.is_dir():
        path = sorted(NEU_DET.glob("*.jpg"))[0]
        return path.read_bytes(), path.name
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue(), "synthetic.jpg"


def on_off_parser(description: str | None) -> argparse.ArgumentParser:
    """The options of every REST benchmark that compares a feature on against off."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--registry", type=Path, default=BUNDLED_ROOT)
    ap.add_argument("--model", default="neu-det-student")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=16)
    return ap


def wrk_body() -> Path:
    """:func:`sample_jpeg` as a file, the POST body ``wrk`` sends; exits when wrk is missing."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    image, name = sample_jpeg()
    body = Path(tempfile.mkdtemp()) / name
    body.write_bytes(image)
    return body


def load_session(registry: Path, ref: str, intra_op_threads: int = 0) -> ModelSession:
    """A plain ONNX Runtime session for ``ref`` with ORT's defaults (all cores, spinning on):
    the baseline a user gets from onnxruntime alone."""
    mv = Registry(registry).resolve(ref)
    return ModelSession(mv, intra_op_threads=intra_op_threads, spinning=True)


def model_batch(session: ModelSession, image: bytes, batch: int) -> np.ndarray:
    """``image`` preprocessed as served, repeated into one ``[batch,3,S,S]`` model input."""
    boxed, _, _ = prepare(image, session.spec.imgsz, 50_000_000)
    return batch_inputs([boxed] * batch)


def raw_throughput(
    session: ModelSession, image: bytes, batch: int, seconds: float
) -> dict[str, float]:
    """Images/s of ``session.run`` alone at ``batch`` (preprocessing excluded), ms/batch,
    and the process's CPU seconds and wall seconds of the timed loop (warm-up excluded)."""
    x = model_batch(session, image, batch)
    for _ in range(3):
        session.run(x)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    times = []
    while time.perf_counter() - t0 < seconds:
        t1 = time.perf_counter()
        session.run(x)
        times.append(time.perf_counter() - t1)
        n += batch
    spent = time.perf_counter() - t0
    return {
        "images_per_s": n / spent,
        "batch_ms_median": float(np.median(times)) * 1000,
        "cpu_s": time.process_time() - c0,
        "seconds": spent,
    }


def parallel_throughput(
    registry: Path, ref: str, image: bytes, batch: int, seconds: float, runs: int = 0
) -> dict[str, float]:
    """Images/s of ``runs`` threads (default: one per core) calling ``run`` at once on one
    session with one intra-op thread each, spinning off: the server's own layout
    (``inference_threads`` x ``intra_op_threads`` 1), without the server. On a small
    machine this is often faster than ORT's defaults (no intra-op barriers), so it is
    the stricter ceiling to compare a served throughput against."""
    runs = runs or len(os.sched_getaffinity(0))
    session = ModelSession(Registry(registry).resolve(ref), intra_op_threads=1)
    x = model_batch(session, image, batch)
    session.run(x)
    counts = [0] * runs
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            session.run(x)
            counts[i] += batch

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"images_per_s": sum(counts) / (time.perf_counter() - t0), "runs": float(runs)}


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(
    registry: Path, ref: str, extra: list[str], env: dict[str, str], cpus: set[int] | None = None
) -> Iterator[str]:
    """Run ``lineinspect serve`` as a separate process (restricted to ``cpus`` if given,
    before it starts a thread); yield its URL once ready."""
    port = free_port()
    cmd = [sys.executable, "-m", "service.cli", "serve", "--registry", str(registry)]
    cmd += ["--model", ref, "--port", str(port), *extra]
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=REPO, preexec_fn=pin)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise TimeoutError("server not ready in 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
