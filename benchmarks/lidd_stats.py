"""Parameters and GFLOPs of every LIDD-Net variant (the ablation rows) as deployed
(re-parameterised, training-only heads dropped) and as trained, at one input size.

    python benchmarks/lidd_stats.py --imgsz 192 --classes 6
"""

from __future__ import annotations

import argparse
import json

import torch

from models.detectors import count_params
from models.detectors.lidd import LIDD_VARIANTS, build_lidd
from models.export import gflops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--imgsz", type=int, default=192)
    ap.add_argument("--classes", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for name in LIDD_VARIANTS:
        m = build_lidd(name, args.classes)
        d = m.deploy()
        rows[name] = {
            "params_deployed": count_params(d),
            "params_training": count_params(m),
            "gflops_deployed": round(gflops(d, args.imgsz), 4),
        }
    print(json.dumps({"imgsz": args.imgsz, "classes": args.classes, "variants": rows}, indent=2))


if __name__ == "__main__":
    main()
