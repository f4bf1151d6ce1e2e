"""The evaluation gate: score a candidate and production on a golden set as served, judge
the candidate by rules, and calibrate per-class thresholds for a target escape rate.

Torch-free (pycocotools for mAP comes with the training extra), so a torch-free worker
can run it in-process or in a child process. The names below are loaded on first use:
the settings class imports :mod:`service.gate.spec` (the rules), which must not pull in
the scoring code that itself needs the settings.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Calibration": "calibrate",
    "calibrate": "calibrate",
    "register_calibrated": "calibrate",
    "GoldenSet": "golden",
    "load_golden": "golden",
    "GateReport": "rules",
    "RuleResult": "rules",
    "gate": "rules",
    "judge": "rules",
    "GateRules": "spec",
    "ModelScore": "scoring",
    "resolve_model": "scoring",
    "score": "scoring",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
