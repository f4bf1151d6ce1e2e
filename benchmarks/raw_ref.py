"""Raw ONNX Runtime references in a process of their own, on chosen cores.

    .venv/bin/python -m benchmarks.raw_ref --registry registry --model neu-det-student \
        --batch 8 --seconds 8 < crazing_10.jpg

Prints one JSON object: ``session.run`` alone with ORT's defaults, its intra-op pool
sized to the usable cores (``images_per_s``; ``cpu_s`` and ``seconds``, this process's CPU
and wall seconds over that loop), and one single-threaded ``run`` per usable core at once
(``par_images_per_s``). ``stream_bench --server-cpus`` starts it pinned to the server's
cores, so the references and the server get the same cores while the camera clients run
on the others. ORT's thread pools are created inside this process, so they inherit its
affinity (a session created in the benchmark's own process would keep the affinity of
the thread that created it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import REPO, load_session, parallel_throughput, raw_throughput


def measure(registry: Path, ref: str, image: bytes, batch: int, seconds: float) -> dict[str, float]:
    """Both raw references, one after the other, in this process."""
    # ORT's default thread count pins its intra-op threads to every core of the machine,
    # escaping this process's affinity: size the pool to the allowed cores explicitly.
    session = load_session(registry, ref, intra_op_threads=len(os.sched_getaffinity(0)))
    raw = raw_throughput(session, image, batch, seconds)
    par = parallel_throughput(registry, ref, image, batch, seconds)
    return {**raw, "par_images_per_s": par["images_per_s"]}


def measure_pinned(
    cpus: set[int], registry: Path, ref: str, image: bytes, batch: int, seconds: float
) -> dict[str, float]:
    """:func:`measure` in a child process restricted to ``cpus`` (the image on its stdin)."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.raw_ref",
        "--registry",
        str(registry),
        "--model",
        ref,
        "--batch",
        str(batch),
        "--seconds",
        str(seconds),
    ]
    out = subprocess.run(
        cmd,
        cwd=REPO,
        check=True,
        input=image,
        capture_output=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    result: dict[str, float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def main() -> None:
    """Measure and print the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", type=Path, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8)
    args = ap.parse_args()
    image = sys.stdin.buffer.read()  # the encoded image the stream benchmark sends
    res = measure(args.registry, args.model, image, args.batch, args.seconds)
    sys.stdout.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
