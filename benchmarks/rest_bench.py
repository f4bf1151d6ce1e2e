"""REST throughput and latency vs raw ONNX Runtime, same model, same cores, one run.

    .venv/bin/python -m benchmarks.rest_bench [--model neu-det-student] [--seconds 15]

Load comes from ``wrk`` (C, so the load generator steals little CPU from the server;
``apt-get install wrk``). Raw ONNX Runtime is ``session.run`` alone on a preprocessed
batch of ``max_batch`` — the ceiling the service can approach; the service must also
receive HTTP, decode JPEG, letterbox, post-process and answer JSON on the same cores.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import load_session, raw_throughput, sample_jpeg, served
from models.registry import BUNDLED_ROOT

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m[1]) * _UNIT[m[2]]


def run_wrk(url: str, body: Path, connections: int, seconds: float) -> dict[str, float]:
    """POST ``body`` as image/jpeg with ``connections`` concurrent connections."""
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "image/jpeg"\n'
    )
    duration = f"-d{max(1, round(seconds))}s"
    cmd = ["wrk", "-t2", f"-c{connections}", duration, "--latency", "-s", str(script)]
    out = subprocess.run(
        [*cmd, url + "/v1/inspect"], check=True, capture_output=True, text=True
    ).stdout
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "p50_ms": _ms(pct["50"]),
        "p90_ms": _ms(pct["90"]),
        "p99_ms": _ms(pct["99"]),
        "non_2xx": int(bad[1]) if bad else 0,
    }


def main() -> None:
    """Run the comparison and print a markdown table plus JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--registry", type=Path, default=BUNDLED_ROOT)
    ap.add_argument("--model", default="neu-det-student")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    image, name = sample_jpeg()
    body = Path(tempfile.mkdtemp()) / name
    body.write_bytes(image)
    session = load_session(args.registry, args.model)
    raw = raw_throughput(session, image, args.max_batch, args.seconds)
    raw1 = raw_throughput(session, image, 1, args.seconds / 2)
    del session
    env = {
        "LINEINSPECT_MAX_BATCH": str(args.max_batch),
        "LINEINSPECT_MAX_DELAY_MS": str(args.max_delay_ms),
        "LINEINSPECT_LOG_LEVEL": "WARNING",
    }
    results = {}
    with served(args.registry, args.model, [], env) as url:
        run_wrk(url, body, 8, 3)  # warm the connection pool and caches
        for c in args.concurrency:
            results[c] = run_wrk(url, body, c, args.seconds)
    budget = 3 * raw["batch_ms_median"] + args.max_delay_ms
    report = {
        "model": args.model,
        "image": name,
        "raw_batch": raw,
        "raw_batch1": raw1,
        "served": results,
        "p99_budget_ms": budget,
    }
    lines = [
        f"model `{args.model}`, image `{name}`, max_batch {args.max_batch}, "
        f"max_delay_ms {args.max_delay_ms}",
        "",
        "| path | concurrency | images/s | vs raw | p50 ms | p90 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
        f"| raw ORT, batch {args.max_batch} | - | {raw['images_per_s']:.1f} | 1.00 | "
        f"{raw['batch_ms_median']:.2f} (per batch) | | | |",
        f"| raw ORT, batch 1 | - | {raw1['images_per_s']:.1f} | "
        f"{raw1['images_per_s'] / raw['images_per_s']:.2f} | {raw1['batch_ms_median']:.2f} | | | |",
    ]
    for c, r in results.items():
        lines.append(
            f"| REST /v1/inspect | {c} | {r['rps']:.1f} | {r['rps'] / raw['images_per_s']:.2f} | "
            f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['non_2xx']} |"
        )
    lines.append("")
    lines.append(f"p99 budget at concurrency 8 (3 x batch compute + max_delay): {budget:.2f} ms")
    print("\n".join(lines))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
