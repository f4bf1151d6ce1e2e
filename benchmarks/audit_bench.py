"""The cost of the audit trail at full throughput: audit on vs off, same model, one run.

    .venv/bin/python -m benchmarks.audit_bench [--seconds 10] [--rounds 3]

REST ``POST /v1/inspect`` with ``wrk`` as fast as the service answers (each request gets
a fresh frame id, so every answer is a new row); capture off in both modes so only the
audit trail differs; "on" is the default ``audit: best_effort`` on a fresh SQLite store.
Rounds alternate off/on so a drifting machine load hits both alike. Each "on" round
reports the rows written and dropped (proof the writer kept up, or not). The on-loop
part (:meth:`Audit.observe`) is also timed on its own.
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


def main() -> None:
    """Run alternating rounds and print a markdown table plus JSON."""
    ap = on_off_parser(__doc__)
    args = ap.parse_args()
    body = wrk_body()
    rps: dict[str, list[float]] = {"off": [], "on": []}
    p99: dict[str, list[float]] = {"off": [], "on": []}
    rows: list[dict[str, float]] = []
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            env = {
                "LINEINSPECT_LOG_LEVEL": "WARNING",
                "LINEINSPECT_DATA_ROOT": tempfile.mkdtemp(prefix="audit-bench-"),
                "LINEINSPECT_CAPTURE_SAMPLERS": "[]",
                "LINEINSPECT_AUDIT": "best_effort" if mode == "on" else "off",
            }
            with served(args.registry, args.model, [], env) as url:
                run_wrk(url, body, args.concurrency, 2)  # warm-up
                got = run_wrk(url, body, args.concurrency, args.seconds)
                if mode == "on":
                    rows.append(_audit_counts(url))
            rps[mode].append(got["rps"])
            p99[mode].append(got["p99_ms"])
    off, on = statistics.mean(rps["off"]), statistics.mean(rps["on"])
    print(f"| audit | req/s, {args.rounds} rounds | mean | p99 ms (median) |")
    print("|---|---|---|---|")
    for mode in ("off", "on"):
        each = ", ".join(f"{v:.1f}" for v in rps[mode])
        print(
            f"| {mode} | {each} | {statistics.mean(rps[mode]):.1f} | "
            f"{statistics.median(p99[mode]):.1f} |"
        )
    print(f"\naudit on / off: {on / off:.3f}")
    for i, r in enumerate(rows):
        print(
            f"round {i + 1} (on): {r['rows']:.0f} rows written, {r['dropped']:.0f} dropped, "
            f"{r['batches']:.0f} batches, {r['write_ms']:.2f} ms per batch"
        )
    cost = observe_cost_us(args.registry, body.read_bytes())
    print(f"Audit.observe on the loop: {cost:.2f} us per frame")
    capacity = writer_rows_per_s(args.registry, body.read_bytes())
    print(f"writer alone (SQLite, batches of 256): {capacity:.0f} rows/s")
    report = {"rps": rps, "p99_ms": p99, "ratio": on / off, "rows": rows, "observe_us": cost}
    print(json.dumps({**report, "writer_rows_per_s": capacity}))


def _audit_counts(url: str) -> dict[str, float]:
    """Rows written and dropped, and the batches' write time, once the queue is empty."""
    deadline = time.monotonic() + 30
    out: dict[str, float] = {}
    while True:
        out = {"rows": 0.0, "dropped": 0.0, "depth": 0.0, "batches": 0.0, "write_s": 0.0}
        for fam in text_string_to_metric_families(httpx.get(url + "/metrics").text):
            for smp in fam.samples:
                key = {
                    "lineinspect_audit_rows_total": "rows",
                    "lineinspect_audit_dropped_total": "dropped",
                    "lineinspect_audit_queue_depth": "depth",
                    "lineinspect_audit_write_seconds_count": "batches",
                    "lineinspect_audit_write_seconds_sum": "write_s",
                }.get(smp.name)
                if key:
                    out[key] += smp.value
        if out["depth"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out["write_ms"] = out["write_s"] / max(out["batches"], 1) * 1000
    return out


def observe_cost_us(registry: Path, image: bytes, n: int = 50_000) -> float:
    """Mean cost of :meth:`Audit.observe` (the on-loop part) for a served record, with the
    writer not started, so every row is queued (the queue holds all ``n``)."""
    from service.audit.audit import Audit
    from service.frames import Frame
    from service.metrics import Metrics
    from service.records import DetectionRecord, ModelInfo, Timing
    from service.registry import Registry
    from service.store import Store

    settings = load_settings(
        None,
        registry_root=registry,
        data_root=Path(tempfile.mkdtemp()),
        audit_queue_size=n + 1,
        audit_queue_bytes=(n + 1) * len(image),
    )
    record = DetectionRecord(
        frame_id="f",
        line="L1",
        model=ModelInfo(name="m", version=1, role="student"),
        verdict="fail",
        timing_ms=Timing(queue=0, inference=0, total=0),
        detections=[{"box": [1, 2, 30, 40], "score": 0.9, "label": "crazing"}],
    )
    store = Store(settings.data_root)
    audit = Audit(settings, store, Metrics(), Registry(registry))  # writer not started
    frame = Frame(image, time.time() + 60)
    t0 = time.perf_counter()
    for _ in range(n):
        audit.observe(frame, record)
    spent = time.perf_counter() - t0
    store.close()
    return spent / n * 1e6


def writer_rows_per_s(registry: Path, image: bytes, n: int = 20_000) -> float:
    """Rows per second the writer thread alone puts into a fresh SQLite store (hashing
    included), with all ``n`` rows queued up front: its headroom over the service."""
    from service.audit.audit import Audit
    from service.frames import Frame
    from service.metrics import Metrics
    from service.records import DetectionRecord, ModelInfo, Timing
    from service.registry import Registry, parse_ref
    from service.store import Store

    settings = load_settings(
        None,
        registry_root=registry,
        data_root=Path(tempfile.mkdtemp()),
        audit_queue_size=n,
        audit_queue_bytes=(n + 1) * len(image),
    )
    reg = Registry(registry)
    mv = reg.resolve(parse_ref("neu-det-student"))
    store = Store(settings.data_root)
    audit = Audit(settings, store, Metrics(), reg)
    for i in range(n):
        record = DetectionRecord(
            frame_id=f"f{i}",
            line="L1",
            model=ModelInfo(name=mv.name, version=mv.version, role=mv.role),
            verdict="fail",
            timing_ms=Timing(queue=0, inference=0, total=0),
            detections=[{"box": [1, 2, 30, 40], "score": 0.9, "label": "crazing"}],
        )
        audit.observe(Frame(image, time.time() + 60), record)
    t0 = time.perf_counter()
    audit.start()
    audit.writer.drain(timeout=600)
    spent = time.perf_counter() - t0
    audit.stop()
    store.close()
    return n / spent


if __name__ == "__main__":
    main()
