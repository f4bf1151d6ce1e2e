"""CPU ONNX Runtime throughput of exported detectors in one run (pruned or light models
against the S-model): images/s at batch 1 and 8, each model at its own input size, the
median of alternating rounds so that a change of machine load hits every model alike,
and each model's speed relative to the first one named.

    python benchmarks/ort_cpu_bench.py s-model=registry/neu-det-student/9/model.onnx \\
        lidd-net=build/lidd/model.onnx --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import onnx

from models.export import ort_throughput
from models.processing import SPEC_METADATA_KEY, ModelSpec


def input_size(path: Path) -> int:
    """The ``imgsz`` of an exported model's ``lineinspect.spec`` metadata."""
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return ModelSpec.from_json(meta[SPEC_METADATA_KEY]).imgsz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="NAME=PATH/model.onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.models)
    sizes = {n: input_size(Path(p)) for n, p in models.items()}
    runs: dict[str, dict[int, list[float]]] = {n: {1: [], 8: []} for n in models}
    for _ in range(args.rounds):
        for b in (1, 8):
            for n, p in models.items():
                runs[n][b].append(ort_throughput(p, sizes[n], b, args.threads, args.seconds))
    report = {
        n: {
            "imgsz": sizes[n],
            **{f"ort_cpu_img_s_b{b}": round(statistics.median(v), 1) for b, v in r.items()},
        }
        for n, r in runs.items()
    }
    first = report[next(iter(report))]
    for r in report.values():
        r["vs_first"] = {
            f"b{b}": round(r[f"ort_cpu_img_s_b{b}"] / max(first[f"ort_cpu_img_s_b{b}"], 1e-9), 2)
            for b in (1, 8)
        }
    load = os.getloadavg()
    out = {"threads": args.threads, "rounds": args.rounds, "loadavg": load, "models": report}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
