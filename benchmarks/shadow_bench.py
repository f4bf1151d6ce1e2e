"""Production throughput and p99 with shadow serving at 10 % vs shadow off, one run.

    .venv/bin/python -m benchmarks.shadow_bench [--seconds 10] [--rounds 3] [--fraction 0.1]

A temporary registry holds two versions of the model (``production`` = the bundled
production version, ``shadow`` = another one when the bundled registry has it, else the
same file registered again), so "on" shadows a real second model on every picked
frame. Rounds alternate off/on so a drifting machine load hits both alike. Load comes
from ``wrk`` (:func:`benchmarks.rest_bench.run_wrk`) on one NEU-DET JPEG.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import on_off_parser, served, wrk_body
from benchmarks.rest_bench import run_wrk
from service.registry import Registry


def shadow_registry(source: Path, name: str) -> tuple[Path, int, int]:
    """A temporary registry with ``name``'s production version and a shadow version."""
    src = Registry(source)
    prod = src.aliases(name)["production"]
    others = [v for v in src.versions(name) if v != prod]
    shadow = others[-1] if others else prod
    root = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    for v in {prod, shadow}:
        shutil.copytree(source / name / str(v), root / name / str(v))
    reg = Registry(root)
    reg.set_alias(name, "production", prod)
    if shadow == prod:  # a second copy, so the shadow is a version of its own
        shadow = prod + 1
        shutil.copytree(root / name / str(prod), root / name / str(shadow))
    reg.set_alias(name, "shadow", shadow)
    return root, prod, shadow


def server_cpu_s() -> float:
    """CPU seconds (user + system, every thread) of this process's children: the one
    ``served`` server while wrk is not running. Less sensitive to other load on the
    machine than wall-clock throughput."""
    me = os.getpid()
    total = 0.0
    for pid in Path(f"/proc/{me}/task/{me}/children").read_text().split():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def shadow_counts(url: str) -> dict[str, float]:
    """Compared and dropped frames, and the mean shadow latency, of one server."""
    out: dict[str, float] = {"compared": 0.0, "latency_s_sum": 0.0}
    for fam in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for s in fam.samples:
            if s.name == "lineinspect_shadow_frames_total":
                out["compared"] += s.value
            elif s.name == "lineinspect_shadow_dropped_total":
                key = f"dropped_{s.labels['reason']}"
                out[key] = out.get(key, 0.0) + s.value
            elif s.name == "lineinspect_shadow_latency_seconds_sum":
                out["latency_s_sum"] += s.value
    return out


def main() -> None:
    """Run alternating rounds and print a markdown table plus JSON."""
    ap = on_off_parser(__doc__)
    ap.add_argument("--fraction", type=float, default=0.1)
    args = ap.parse_args()
    body = wrk_body()
    root, prod, shadow = shadow_registry(args.registry, args.model)
    rps: dict[str, list[float]] = {"off": [], "on": []}
    p99: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}  # server CPU ms per request
    failed: dict[str, list[float]] = {"off": [], "on": []}  # non-2xx answers (504: deadline)
    counts: list[dict[str, float]] = []
    summary: dict[str, object] = {}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            env = {
                "LINEINSPECT_LOG_LEVEL": "WARNING",
                "LINEINSPECT_CAPTURE_SAMPLERS": "[]",
                "LINEINSPECT_TRAINER": "off",
                "LINEINSPECT_SHADOW_ENABLED": "true" if mode == "on" else "false",
                "LINEINSPECT_SHADOW_FRACTION": str(args.fraction),
            }
            with served(root, args.model, [], env) as url:
                run_wrk(url, body, args.concurrency, 2)  # warm-up (and the shadow's load)
                before, cpu0 = shadow_counts(url), server_cpu_s()
                got = run_wrk(url, body, args.concurrency, args.seconds)
                cpu[mode].append((server_cpu_s() - cpu0) / (got["rps"] * args.seconds) * 1000)
                if mode == "on":
                    after = shadow_counts(url)
                    counts.append({k: after.get(k, 0.0) - before.get(k, 0.0) for k in after})
                    summary = httpx.get(f"{url}/v1/models/{args.model}/shadow").json()
            failed[mode].append(got["non_2xx"])
            rps[mode].append(got["rps"])
            p99[mode].append(got["p99_ms"])
    off, on = statistics.mean(rps["off"]), statistics.mean(rps["on"])
    print(
        f"model `{args.model}` production v{prod}, shadow v{shadow} at "
        f"{args.fraction:.0%}, {args.concurrency} connections, {args.seconds:.0f} s rounds"
    )
    print(
        f"\n| shadow | req/s, {args.rounds} rounds | mean | p99 ms, rounds | p99 median "
        "| server CPU ms/request, rounds | non-2xx |"
    )
    print("|---|---|---|---|---|---|---|")
    for mode in ("off", "on"):
        r = ", ".join(f"{v:.1f}" for v in rps[mode])
        p = ", ".join(f"{v:.1f}" for v in p99[mode])
        print(
            f"| {mode} | {r} | {statistics.mean(rps[mode]):.1f} | {p} | "
            f"{statistics.median(p99[mode]):.1f} | "
            + ", ".join(f"{v:.2f}" for v in cpu[mode])
            + f" | {sum(failed[mode]):.0f} |"
        )
    compared = sum(c["compared"] for c in counts)
    lat = sum(c["latency_s_sum"] for c in counts) / compared * 1000 if compared else 0.0
    print(f"\nthroughput on / off: {on / off:.3f}")
    print(f"shadow compared {compared:.0f} frames in the timed 'on' rounds, mean {lat:.2f} ms")
    print(f"GET /v1/models/{args.model}/shadow after the last round: {json.dumps(summary)}")
    report = {"rps": rps, "p99_ms": p99, "cpu_ms": cpu, "non_2xx": failed, "ratio": on / off}
    report["shadow"] = counts
    print(json.dumps(report))


if __name__ == "__main__":
    main()
