"""StreamInspect throughput from concurrent camera streams vs raw ONNX Runtime, one run.

    .venv/bin/python -m benchmarks.stream_bench [--model neu-det-student] [--onnx FILE]
        [--cameras 4] [--seconds 10] [--rounds 3] [--flood]
        [--encoding jpeg [mono8 rgb8]] [--server-cpus 1 [--inference-threads 1]]

The server is ``lineinspect serve --grpc-port N`` in its own process (as deployed);
the camera clients are ``grpc.aio`` streams in this process, each keeping ``--window``
frames unanswered (a camera that never outruns the model), or with ``--flood`` sending
as fast as flow control lets it (newest frame wins: superseded frames are skipped).
Raw ONNX Runtime is ``session.run`` alone on a preprocessed batch of ``max_batch`` in
this process while the server idles, twice: with ORT's defaults (all cores in one
``run``) and as one single-threaded ``run`` per core at once (the server's own layout,
often the faster one on small machines). Both are ceilings; the service must also receive
gRPC, decode, letterbox, post-process and answer on the same cores. Rounds alternate
raw and streaming so background load hits both alike; the report gives every round,
and the server's CPU per frame by thread (inference, decode, the event loop).

By default everything shares every core, cameras included. ``--server-cpus`` gives the
server and both raw references (measured in a child process, ``benchmarks.raw_ref``)
the same cores and the camera clients the rest: the deployed topology, where cameras
are other machines, scaled down to one host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import grpc
import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import (
    free_port,
    load_session,
    parallel_throughput,
    raw_throughput,
    sample_jpeg,
    served,
)
from benchmarks.raw_ref import measure_pinned
from models.registry import BUNDLED_ROOT
from service.grpc.generated.lineinspect.v1 import inspection_pb2 as pb
from service.registry import Registry


def cpu_list(text: str) -> set[int]:
    """``1``, ``0,2`` or ``2-7`` → a set of core ids."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def registry_for(args: argparse.Namespace) -> tuple[Path, str, str]:
    """(registry root, model ref, description) from --onnx, the registry, or a stand-in."""
    if args.onnx is None and (args.registry / args.model.split("@")[0].split(":")[0]).is_dir():
        return args.registry, args.model, f"{args.model} from {args.registry}"
    import onnx  # dev dependency: only to read the spec of a bare ONNX file

    from models.processing import SPEC_METADATA_KEY, ModelSpec

    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    art = tmp / "artefact"
    art.mkdir()
    if args.onnx is not None:
        (art / "model.onnx").write_bytes(args.onnx.read_bytes())
        meta = {
            p.key: p.value
            for p in onnx.load(str(args.onnx), load_external_data=False).metadata_props
        }
        spec, what = ModelSpec.from_json(meta[SPEC_METADATA_KEY]), f"{args.onnx} (bare ONNX)"
    else:  # neither: the test detector at 224 px with extra compute, clearly labelled
        from tests.support.tiny_onnx import build_tiny_detector

        spec = build_tiny_detector(art / "model.onnx", imgsz=224, strides=(8, 16, 32), extra_cost=8)
        what = "synthetic stand-in (tests/support/tiny_onnx, 224 px, extra_cost=8)"
    card = {
        "role": "student",
        "architecture": "bench",
        "class_names": list(spec.class_names),
        "input_size": spec.imgsz,
        "data_fingerprint": "bench",
        "parent": None,
        "metrics": {},
        "params": 0,
        "gflops": 0.0,
    }
    (art / "card.json").write_text(json.dumps(card))
    reg = Registry(tmp / "registry")
    reg.root.mkdir()
    reg.register(art, "bench", alias="production")
    return reg.root, "bench", what


def server_pid() -> int:
    """The pid of the server child process (this benchmark starts exactly one)."""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    return int(children[-1])


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all threads); this one by default."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_stats(url: str) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram."""
    s = c = 0.0
    for fam in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for x in fam.samples:
            if x.name == "lineinspect_batch_size_sum":
                s += x.value
            elif x.name == "lineinspect_batch_size_count":
                c += x.value
    return s, c


def frame_bytes(header: bytes, frame_id: str) -> bytes:
    """A serialised ``InspectRequest``: the camera's constant fields plus field 5
    (frame_id). Protobuf messages concatenate field by field, so only the id is encoded
    per frame: the cameras are other machines in production, and the harness should
    take as little of the shared cores as it can."""
    fid = frame_id.encode()
    assert len(fid) < 128  # one-byte varint length
    return header + b"\x2a" + bytes([len(fid)]) + fid


def camera_request(image: bytes, encoding: str) -> pb.InspectRequest:
    """The constant part of every frame: the JPEG itself, or (``--encoding mono8`` or
    ``rgb8``) its pixels as a raw camera buffer, decoded once here as a GigE Vision
    camera would hand them over."""
    if encoding == "jpeg":
        return pb.InspectRequest(image=image, encoding="jpeg", line="L1")
    flag = cv2.IMREAD_GRAYSCALE if encoding == "mono8" else cv2.IMREAD_COLOR_RGB
    pixels = cv2.imdecode(np.frombuffer(image, np.uint8), flag)
    h, w = pixels.shape[:2]
    return pb.InspectRequest(
        image=pixels.tobytes(), encoding=encoding, line="L1", width=w, height=h
    )


async def camera(
    channel: grpc.aio.Channel,
    cam: str,
    request: pb.InspectRequest,
    window: int | None,
    t_start: float,
    t_end: float,
    out: dict[str, Any],
) -> None:
    """One camera stream; counts answers that arrive inside [t_start, t_end]."""
    room = asyncio.Semaphore(window or 1)
    sent: dict[str, float] = {}
    header = pb.InspectRequest()
    header.CopyFrom(request)
    header.camera = cam
    raw = header.SerializeToString()
    call = channel.stream_stream(  # requests go out as they are: already serialised
        "/lineinspect.v1.InspectionService/StreamInspect",
        request_serializer=None,
        response_deserializer=pb.InspectResponse.FromString,
    )

    async def frames() -> AsyncIterator[bytes]:
        i = 0
        while time.perf_counter() < t_end:
            if window:
                await room.acquire()
            fid = f"{cam}-{i}"
            sent[fid] = time.perf_counter()
            yield frame_bytes(raw, fid)
            i += 1

    async for resp in call(frames()):
        now = time.perf_counter()
        if window:
            room.release()
        t0 = sent.pop(resp.frame_id, now)
        if t_start <= now <= t_end:
            out[pb.FrameStatus.Name(resp.status)] = out.get(pb.FrameStatus.Name(resp.status), 0) + 1
            if resp.status == pb.FRAME_STATUS_INSPECTED:
                out.setdefault("latency", []).append(now - t0)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread group of a process, by thread name with digits dropped
    (``infer-m:4-0`` and ``infer-m:4-1`` count together)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        key = "".join(c for c in name if not c.isdigit()).rstrip("-_:") or name
        fields = stat.rsplit(")", 1)[1].split()
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def cpu_window(
    pid: int, t_start: float, t_end: float
) -> tuple[float, float, dict[str, float]]:
    """CPU seconds the server and this process spent between the two instants, and the
    server's per thread group."""
    await asyncio.sleep(max(0.0, t_start - time.perf_counter()))
    s0, c0, th0 = cpu_seconds(pid), cpu_seconds(), thread_cpu(pid)
    await asyncio.sleep(max(0.0, t_end - time.perf_counter()))
    th1 = thread_cpu(pid)
    threads = {k: v - th0.get(k, 0.0) for k, v in th1.items()}
    return cpu_seconds(pid) - s0, cpu_seconds() - c0, threads


async def stream_round(
    target: str, request: pb.InspectRequest, args: argparse.Namespace, pid: int
) -> dict[str, Any]:
    """Run every camera for warm-up + ``--seconds``; inspected frames/s, latencies, CPU."""
    opts = [("grpc.max_send_message_length", 64 * 2**20)]
    async with grpc.aio.insecure_channel(target, options=opts) as channel:
        t_start = time.perf_counter() + args.warmup
        t_end = t_start + args.seconds
        window = None if args.flood else args.window
        results: list[dict[str, Any]] = [{} for _ in range(args.cameras)]
        cams = [
            camera(channel, f"c{i}", request, window, t_start, t_end, results[i])
            for i in range(args.cameras)
        ]
        cpu = asyncio.create_task(cpu_window(pid, t_start, t_end))
        await asyncio.gather(*cams)
        server_cpu, client_cpu, threads = await cpu
    inspected = sum(r.get("FRAME_STATUS_INSPECTED", 0) for r in results)
    per_frame = {k: round(v / max(inspected, 1) * 1000, 3) for k, v in threads.items() if v > 0}
    lat = sorted(x for r in results for x in r.get("latency", []))
    return {
        "images_per_s": inspected / args.seconds,
        "skipped_per_s": sum(r.get("FRAME_STATUS_SKIPPED", 0) for r in results) / args.seconds,
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan"),
        "images_per_cpu_s": inspected / server_cpu if server_cpu else float("nan"),
        "server_cores": server_cpu / args.seconds,
        "client_cores": client_cpu / args.seconds,
        "server_thread_ms_per_frame": per_frame,
        "client_ms_per_frame": round(client_cpu / max(inspected, 1) * 1000, 3),
    }


def main() -> None:
    """Alternate raw and streaming rounds; print a markdown table and JSON."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--registry", type=Path, default=BUNDLED_ROOT)
    ap.add_argument("--model", default="neu-det-student")
    ap.add_argument(
        "--onnx", type=Path, help="bench a bare exported ONNX file (with lineinspect.spec)"
    )
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--window", type=int, default=8, help="unanswered frames per camera")
    ap.add_argument(
        "--flood", action="store_true", help="cameras send as fast as flow control allows"
    )
    ap.add_argument("--window-bytes", type=int, help="server grpc_stream_window_bytes")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-delay-ms", type=float, default=2)
    ap.add_argument("--in-flight", type=int, default=8, help="server grpc_stream_in_flight")
    ap.add_argument("--intra-op-threads", type=int, default=0)
    ap.add_argument("--inference-threads", type=int, help="server inference_threads")
    ap.add_argument(
        "--server-cpus",
        type=cpu_list,
        help="pin the server and the raw references to these cores (e.g. 1 or 2-7) and the "
        "camera clients to the others: cameras are other machines in production",
    )
    ap.add_argument(
        "--image", type=Path, help="JPEG to send (default: a NEU-DET image or synthetic)"
    )
    ap.add_argument(
        "--encoding",
        nargs="+",
        choices=("jpeg", "mono8", "rgb8"),
        default=["jpeg"],
        help="send the JPEG, or its pixels as raw camera frames (Mono8 / RGB8); several "
        "alternate within each round, against the same raw reference",
    )
    args = ap.parse_args()

    registry, ref, what = registry_for(args)
    image, image_name = (args.image.read_bytes(), args.image.name) if args.image else sample_jpeg()
    if args.server_cpus:
        clients = os.sched_getaffinity(0) - args.server_cpus
        if not clients or not args.server_cpus <= os.sched_getaffinity(0):
            ap.error(f"--server-cpus must be a proper subset of {sorted(os.sched_getaffinity(0))}")
        os.sched_setaffinity(0, clients)  # before gRPC starts its threads: they inherit it
    else:
        session = load_session(registry, ref, args.intra_op_threads)
    settings = {
        "max_batch": args.max_batch,
        "max_delay_ms": args.max_delay_ms,
        "grpc_stream_in_flight": args.in_flight,
        "grpc_stream_buffer": max(64, args.in_flight),
        "intra_op_threads": args.intra_op_threads,
        "log_level": "WARNING",
        "default_deadline_ms": 60000,
        "providers": '["CPUExecutionProvider"]',
    }
    if args.window_bytes:
        settings["grpc_stream_window_bytes"] = args.window_bytes
    if args.inference_threads:
        settings["inference_threads"] = args.inference_threads
    env = {f"LINEINSPECT_{k.upper()}": str(v) for k, v in settings.items()}
    requests = {enc: camera_request(image, enc) for enc in args.encoding}
    gport = free_port()
    rounds: dict[str, list[dict[str, Any]]] = {enc: [] for enc in args.encoding}
    with served(registry, ref, ["--grpc-port", str(gport)], env, args.server_cpus) as url:
        pid = server_pid()
        for _ in range(args.rounds):
            if args.server_cpus:  # in a child on the server's cores
                raw = measure_pinned(
                    args.server_cpus, registry, ref, image, args.max_batch, args.seconds
                )
                par = {"images_per_s": raw["par_images_per_s"]}
            else:
                raw = raw_throughput(session, image, args.max_batch, args.seconds)
                par = parallel_throughput(registry, ref, image, args.max_batch, args.seconds)
            for enc, request in requests.items():  # each encoding against this round's raw
                b0 = batch_stats(url)
                st = asyncio.run(stream_round(f"127.0.0.1:{gport}", request, args, pid))
                b1 = batch_stats(url)
                st["mean_batch"] = (b1[0] - b0[0]) / max(1.0, b1[1] - b0[1])
                st["raw_images_per_s"] = raw["images_per_s"]
                st["ratio"] = st["images_per_s"] / raw["images_per_s"]
                st["raw_images_per_cpu_s"] = raw["images_per_s"] * raw["seconds"] / raw["cpu_s"]
                st["raw_cores"] = raw["cpu_s"] / raw["seconds"]
                st["cpu_ratio"] = st["images_per_cpu_s"] / st["raw_images_per_cpu_s"]
                st["par_images_per_s"] = par["images_per_s"]
                best = max(raw["images_per_s"], par["images_per_s"])
                st["best_ratio"] = st["images_per_s"] / best
                rounds[enc].append(st)
    for enc, request in requests.items():
        sent = f"{enc} {request.width}x{request.height}, " if request.width else "jpeg, "
        report(rounds[enc], args, f"{what}; image: {image_name} ({sent}{len(request.image)} B)")


COLUMNS = {
    "raw_images_per_s": "raw ORT img/s",
    "images_per_s": "stream img/s",
    "ratio": "ratio",
    "raw_images_per_cpu_s": "raw img/CPU-s",
    "images_per_cpu_s": "stream img/CPU-s",
    "cpu_ratio": "CPU ratio",
    "par_images_per_s": "raw ORT 1-thread runs x cores img/s",
    "best_ratio": "ratio vs best raw",
    "skipped_per_s": "skipped/s",
    "p50_ms": "p50 ms",
    "p99_ms": "p99 ms",
    "mean_batch": "mean batch",
    "raw_cores": "raw cores",
    "server_cores": "server cores",
    "client_cores": "client cores",
}


def report(rounds: list[dict[str, Any]], args: argparse.Namespace, what: str) -> None:
    """Print the rounds as a markdown table, the medians, and JSON."""
    mode = "flood" if args.flood else f"window {args.window}"
    cores = (
        "every core shared"
        if not args.server_cpus
        else (
            f"server + raw ORT on cores {sorted(args.server_cpus)}, "
            f"cameras on {sorted(os.sched_getaffinity(0))}"
        )
    )
    print(
        f"\nmodel: {what}\n{args.cameras} cameras, {mode}; max_batch {args.max_batch}, "
        f"max_delay {args.max_delay_ms} ms, in-flight {args.in_flight}; {cores}\n"
    )
    print("| round | " + " | ".join(COLUMNS.values()) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for i, r in enumerate(rounds, 1):
        cells = [f"{r[c]:.3f}" if "ratio" in c else f"{r[c]:.1f}" for c in COLUMNS]
        print(f"| {i} | " + " | ".join(cells) + " |")
    print("\nserver CPU ms per frame by thread (python = the event loop), client ms per frame:")
    for i, r in enumerate(rounds, 1):
        print(f"  round {i}: {r['server_thread_ms_per_frame']}, client {r['client_ms_per_frame']}")
    wall = statistics.median(r["ratio"] for r in rounds)
    cpu = statistics.median(r["cpu_ratio"] for r in rounds)
    best = statistics.median(r["best_ratio"] for r in rounds)
    print(
        f"\nmedian wall-clock ratio {wall:.3f} (vs ORT defaults), {best:.3f} (vs the faster "
        f"raw layout); median CPU-normalised ratio {cpu:.3f}"
    )
    summary = {"wall_ratio": wall, "best_ratio": best, "cpu_ratio": cpu}
    print(json.dumps({"model": what, "rounds": rounds, **summary}))


if __name__ == "__main__":
    main()
