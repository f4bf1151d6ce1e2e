"""Throughput through the Redis queue (1 and 2 workers) vs in-process vs raw ONNX Runtime.

    .venv/bin/python -m benchmarks.redis_bench [--model neu-det-student] [--onnx FILE]
        [--seconds 10] [--rounds 2] [--concurrency 32] [--max-batch 8]

All in one run, same model, same image, same cores, paths alternating per round:

* raw ORT: ``session.run`` alone on a preprocessed batch of ``max_batch`` (the ceiling);
* in-process: the single-node path (``Inspector`` + in-process batcher) in this process;
* redis, N workers: ``RedisFrameBackend`` in this process (the API side) → a real
  ``redis-server`` → N ``lineinspect worker infer`` subprocesses → answers back;
* redis plumbing: the enqueue and deliver Lua scripts with no model at all (a
  "null worker"): what the Redis path alone can carry for this frame size.

The load is closed-loop: ``--concurrency`` frames in flight, a new one as soon as one
is answered. Workers sharing the cores get ``intra_op_threads = cores // workers``.
Besides frames/s, each path reports CPU ms per frame of every process involved (this
process, the workers, redis-server): the comparable number on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import load_session, raw_throughput, sample_jpeg
from benchmarks.stream_bench import registry_for
from models.registry import BUNDLED_ROOT
from service.config import Settings, load_settings
from service.errors import LineInspectError
from service.frames import Frame
from service.inspector import Inspector
from service.manager import ModelManager
from service.metrics import Metrics
from service.queue.backend import RedisFrameBackend
from service.queue.streams import DELIVER_LUA, ENQUEUE_LUA, QueueKeys, connect, ensure_group
from service.records import DetectionRecord
from service.registry import Registry
from tests.support.redis_server import RedisServer
from tests.support.workers import run_workers

Inspect = Callable[[Frame], Awaitable[DetectionRecord]]


def bench_image(model_description: str) -> tuple[bytes, str]:
    """A real NEU-DET image, or for the synthetic stand-in model (which calls every bright
    cell a defect) a dark textured 200x200 frame with one small bright defect."""
    if not model_description.startswith("synthetic"):
        return sample_jpeg()
    rng = np.random.default_rng(0)
    img = rng.integers(10, 60, (200, 200, 3), dtype=np.uint8)
    img[60:80, 40:60] = rng.integers(220, 255, (20, 20, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95)
    return buf.getvalue(), "synthetic-defect.jpg"


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_meter(pids: Sequence[int] = (), redis: RedisServer | None = None) -> Callable[[], float]:
    """CPU seconds so far of this process, ``pids`` and redis-server, summed."""

    def total() -> float:
        spent = time.process_time() + sum(proc_cpu(p) for p in pids)
        if redis is not None:
            info = redis.client().info("cpu")
            spent += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return spent

    return total


async def closed_loop(
    inspect: Inspect,
    image: bytes,
    concurrency: int,
    seconds: float,
    cpu: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """``concurrency`` clients, each sending the next frame when the last is answered."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    end = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                await inspect(Frame(image, time.time() + 30, line="L1", camera="c1"))
                latencies.append(time.perf_counter() - t0)
            except LineInspectError as exc:
                errors[exc.code] += 1

    cpu0 = cpu() if cpu else 0.0
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    spent = time.perf_counter() - t0
    cpu_spent = (cpu() - cpu0) if cpu else 0.0
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "frames_per_s": len(latencies) / spent,
        "cpu_ms_per_frame": cpu_spent / max(1, len(latencies)) * 1000,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "errors": dict(errors),
    }


def raw_ort(registry: Path, ref: str, image: bytes, args: argparse.Namespace) -> dict[str, Any]:
    """``session.run`` alone at ``max_batch`` in this process, with its CPU per frame."""
    session = load_session(registry, ref)
    raw = raw_throughput(session, image, args.max_batch, args.seconds)
    frames = raw["images_per_s"] * raw["seconds"]
    return {**raw, "cpu_ms_per_frame": raw["cpu_s"] / frames * 1000}


async def inprocess(settings: Settings, image: bytes, args: argparse.Namespace) -> dict[str, Any]:
    """The single-node path, in this process."""
    metrics = Metrics()
    manager = ModelManager(Registry(settings.registry_root), settings, metrics)
    await manager.start()
    with ThreadPoolExecutor(settings.decode_threads) as pool:
        inspector = Inspector(manager, metrics, pool, settings.max_pixels)
        await closed_loop(inspector.inspect, image, args.concurrency, 2)  # warm
        result = await closed_loop(
            inspector.inspect, image, args.concurrency, args.seconds, cpu_meter()
        )
    await manager.stop()
    return result


def mean_batch(worker_url: str) -> float:
    """Mean executed batch size of one worker, from its /metrics."""
    text = httpx.get(worker_url + "/metrics").text
    vals = {
        s.name: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("lineinspect_batch_size_")
    }
    return vals.get("lineinspect_batch_size_sum", 0) / max(
        1.0, vals.get("lineinspect_batch_size_count", 0)
    )


async def through_redis(
    settings: Settings, image: bytes, args: argparse.Namespace, cpu: Callable[[], float]
) -> dict[str, Any]:
    """The API side in this process; the workers are already running."""
    async with RedisFrameBackend(settings, Metrics()) as backend:
        while not backend.ready:
            await asyncio.sleep(0.05)
        await closed_loop(backend.inspect, image, args.concurrency, 2)  # warm
        return await closed_loop(backend.inspect, image, args.concurrency, args.seconds, cpu)


async def plumbing(
    settings: Settings, image: bytes, seconds: float, batch: int = 64
) -> dict[str, Any]:
    """Enqueue → XREADGROUP → deliver (ack + reply + audit) with no model: Redis alone."""
    keys, client = QueueKeys.from_settings(settings), connect(settings, block_ms=1000)
    enqueue, deliver = client.register_script(ENQUEUE_LUA), client.register_script(DELIVER_LUA)
    await ensure_group(client, keys)
    record = json.dumps({"verdict": "pass", "detections": [], "pad": "x" * 300})
    cpu0 = await redis_cpu(client)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pipe = client.pipeline(transaction=False)
        for i in range(batch):
            fields = ["rid", f"{n + i}", "reply", keys.replies("bench"), "data", image]
            await enqueue(keys=[keys.frames], args=[10**9, *fields], client=pipe)
        await pipe.execute()
        resp = await client.xreadgroup(keys.group, "bench", {keys.frames: ">"}, count=batch)
        pipe = client.pipeline(transaction=False)
        for eid, fields in resp[0][1]:
            rid = fields[b"rid"].decode()
            ks = [keys.frames, keys.done(rid), keys.replies("bench"), keys.results]
            await deliver(
                keys=ks,
                args=[keys.group, eid, rid, 60_000, record, 10_000, 60_000, 10_000, record],
                client=pipe,
            )
        await pipe.execute()
        n += batch
    spent = time.perf_counter() - t0
    redis_cpu_s = await redis_cpu(client) - cpu0
    await client.aclose()
    return {
        "frames_per_s": n / spent,
        "mb_per_s": n * len(image) / spent / 2**20,
        "redis_cpu_ms_per_frame": redis_cpu_s / n * 1000,
        "frames_per_redis_core_s": n / redis_cpu_s,
    }


async def redis_cpu(client: Any) -> float:
    """CPU seconds (user + system) the redis-server process has used so far."""
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    """Run every path ``--rounds`` times; print a markdown table plus JSON."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--registry", type=Path, default=BUNDLED_ROOT)
    ap.add_argument("--model", default="neu-det-student")
    ap.add_argument("--onnx", type=Path, default=None, help="Benchmark a bare ONNX file instead.")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    registry, ref, what = registry_for(args)
    image, image_name = bench_image(what)
    cores = os.cpu_count() or 1
    base = {
        "registry_root": registry,
        "models": [ref],
        "max_batch": args.max_batch,
        "max_delay_ms": args.max_delay_ms,
        "warmup_runs": 2,
        "log_level": "WARNING",
    }
    report: dict[str, Any] = {
        "model": what,
        "image": f"{image_name} ({len(image)} bytes)",
        "cores": cores,
        "rounds": [],
    }
    with tempfile.TemporaryDirectory(prefix="redis-bench-") as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        redis.start()
        try:
            settings = load_settings(None, queue="redis", redis_url=redis.url, **base)
            for _ in range(args.rounds):  # alternate paths: background load hits all alike
                rnd: dict[str, Any] = {"raw_ort": raw_ort(registry, ref, image, args)}
                inproc = load_settings(None, **base)
                rnd["inprocess"] = asyncio.run(inprocess(inproc, image, args))
                for n in args.workers:
                    env = {k: v for k, v in base.items() if k not in ("registry_root", "models")}
                    env["intra_op_threads"] = max(1, cores // n)
                    with run_workers(n, registry, redis.url, Path(tmp), models=[ref], **env) as ws:
                        cpu = cpu_meter([w.proc.pid for w in ws], redis)
                        result = asyncio.run(through_redis(settings, image, args, cpu))
                        result["mean_batch"] = [round(mean_batch(w.url), 2) for w in ws]
                    rnd[f"redis_{n}_workers"] = result
                report["rounds"].append(rnd)
            plumbing_settings = settings.model_copy(update={"redis_prefix": "plumbing"})
            report["redis_plumbing"] = asyncio.run(plumbing(plumbing_settings, image, args.seconds))
        finally:
            redis.kill()
    print_table(report, args)
    print(json.dumps(report, indent=2))


def print_table(report: dict[str, Any], args: argparse.Namespace) -> None:
    """The markdown table of docs/benchmarks.md: medians over the rounds."""
    rounds = report["rounds"]

    def med(key: str, stat: str) -> float:
        return statistics.median(r[key][stat] for r in rounds)

    raw = med("raw_ort", "images_per_s")
    cores = report["cores"]
    print(
        f"model: {report['model']}; image: {report['image']}; {cores} cores; "
        f"max_batch {args.max_batch}, max_delay_ms {args.max_delay_ms}, concurrency "
        f"{args.concurrency}, {args.seconds:.0f} s per path, median of {len(rounds)} rounds\n"
    )
    print(
        "| path | frames/s (each round) | vs raw ORT | CPU ms/frame | p50 ms | p99 ms "
        "| mean batch | errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    raw_cpu = med("raw_ort", "cpu_ms_per_frame")
    each = ", ".join(f"{r['raw_ort']['images_per_s']:.0f}" for r in rounds)
    print(
        f"| raw ORT, batch {args.max_batch} | {raw:.1f} ({each}) | 1.00 | {raw_cpu:.2f} "
        f"| | | {args.max_batch} | |"
    )
    paths = [("inprocess", "in-process (Inspector + batcher)")] + [
        (f"redis_{n}_workers", f"Redis, {n} worker{'s' if n > 1 else ''}") for n in args.workers
    ]
    for key, name in paths:
        fps, cpu = med(key, "frames_per_s"), med(key, "cpu_ms_per_frame")
        each = ", ".join(f"{r[key]['frames_per_s']:.0f}" for r in rounds)
        batch = ", ".join(str(b) for b in rounds[-1][key].get("mean_batch", [])) or "-"
        errors = sum(sum(r[key]["errors"].values()) for r in rounds)
        p50, p99 = med(key, "p50_ms"), med(key, "p99_ms")
        print(
            f"| {name} | {fps:.1f} ({each}) | {fps / raw:.2f} | {cpu:.2f} "
            f"| {p50:.0f} | {p99:.0f} | {batch} | {errors} |"
        )
    p = report["redis_plumbing"]
    print(
        f"\nRedis plumbing only (enqueue + XREADGROUP + deliver scripts, no model): "
        f"{p['frames_per_s']:.0f} frames/s = {p['mb_per_s']:.1f} MiB/s of frames; "
        f"redis-server spent {p['redis_cpu_ms_per_frame']:.3f} ms CPU per frame "
        f"(= {p['frames_per_redis_core_s']:.0f} frames/s per Redis core)"
    )


if __name__ == "__main__":
    main()
