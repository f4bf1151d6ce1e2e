"""Inspection throughput with capture on vs off, same model, same machine, one run.

    .venv/bin/python -m benchmarks.capture_bench [--seconds 10] [--rounds 3]

Capture on = ``random`` at 5 % plus ``near_threshold`` (eps 0.05), no limits, so every
kept frame goes through the writer (the repeated benchmark image is then dropped as a
duplicate after a store look-up). Rounds alternate off/on so a drifting machine load
hits both alike; the store is a fresh temporary data_root. Load comes from ``wrk``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import on_off_parser, served, wrk_body
from benchmarks.rest_bench import run_wrk
from service.config import load_settings

ON = [
    {"name": "random", "kind": "random", "fraction": 0.05},
    {"name": "near_threshold", "kind": "near_threshold", "epsilon": 0.05},
]


def main() -> None:
    """Run alternating rounds and print a markdown table plus JSON."""
    ap = on_off_parser(__doc__)
    args = ap.parse_args()
    body = wrk_body()
    rps: dict[str, list[float]] = {"off": [], "on": []}
    p99: dict[str, list[float]] = {"off": [], "on": []}
    offered: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            env = {
                "LINEINSPECT_LOG_LEVEL": "WARNING",
                "LINEINSPECT_DATA_ROOT": tempfile.mkdtemp(prefix="capture-bench-"),
                "LINEINSPECT_CAPTURE_SAMPLERS": json.dumps(ON if mode == "on" else []),
                "LINEINSPECT_CAPTURE_MIN_FREE_BYTES": "0",
            }
            with served(args.registry, args.model, [], env) as url:
                run_wrk(url, body, args.concurrency, 2)  # warm-up
                got = run_wrk(url, body, args.concurrency, args.seconds)
                counts = _capture_counts(url)
            offered[mode].append(counts)
            rps[mode].append(got["rps"])
            p99[mode].append(got["p99_ms"])
    off, on = statistics.mean(rps["off"]), statistics.mean(rps["on"])
    print(f"| capture | req/s (mean of {args.rounds}) | p99 ms (median) |")
    print("|---|---|---|")
    for mode in ("off", "on"):
        print(f"| {mode} | {statistics.mean(rps[mode]):.1f} | {statistics.median(p99[mode]):.1f} |")
    print(f"\ncapture on / off: {on / off:.3f}")
    cost = offer_cost_us(args.registry, args.model, body.read_bytes())
    print(f"Capture.observe on the loop: {cost:.1f} us per frame (random 5 % + near_threshold)")
    print(
        json.dumps(
            {"rps": rps, "p99_ms": p99, "ratio": on / off, "captures": offered, "offer_us": cost}
        )
    )


def _capture_counts(url: str) -> dict[str, float]:
    """Captured and dropped frames of this server (proof the writer was busy)."""
    text = httpx.get(url + "/metrics").text
    out: dict[str, float] = {"captured": 0.0, "dropped": 0.0}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name == "lineinspect_captured_frames_total":
                out["captured"] += smp.value
            elif smp.name == "lineinspect_capture_dropped_frames_total":
                out["dropped"] += smp.value
    return out


def offer_cost_us(registry: Path, model: str, image: bytes, n: int = 20000) -> float:
    """Mean cost of :meth:`Capture.observe` (the on-loop part) for a served record, with
    the writer stopped so its queue fills and further captures are dropped and counted."""
    from service.capture.capture import Capture
    from service.frames import Frame
    from service.metrics import Metrics
    from service.records import DetectionRecord, ModelInfo, Timing
    from service.registry import Registry, parse_ref
    from service.store import Store

    settings = load_settings(
        None, registry_root=registry, data_root=Path(tempfile.mkdtemp()), capture_samplers=ON
    )
    reg = Registry(registry)
    mv = reg.resolve(parse_ref(model))
    card_thr = float(mv.card.get("recommended_score_threshold", 0.25))
    record = DetectionRecord(
        frame_id="f",
        line="L1",
        model=ModelInfo(name=mv.name, version=mv.version, role=mv.role),
        verdict="fail",
        timing_ms=Timing(queue=0, inference=0, total=0),
        detections=[  # one near the threshold: every frame is kept and queued (worst case)
            {"box": [1, 2, 30, 40], "score": card_thr + 0.2, "label": "crazing"},
            {"box": [5, 2, 60, 40], "score": card_thr + 0.01, "label": "patches"},
        ],
    )
    store = Store(settings.data_root)
    capture = Capture(settings, store, Metrics(), reg)  # writer not started: queue fills
    frame = Frame(image, time.time() + 60)
    capture.observe(frame, record)
    t0 = time.perf_counter()
    for _ in range(n):
        capture.observe(frame, record)
    spent = time.perf_counter() - t0
    store.close()
    return spent / n * 1e6


if __name__ == "__main__":
    main()
