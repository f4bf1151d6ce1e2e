"""The evaluation gate: score a candidate and production on a golden set as served, judge
the candidate by rules, and calibrate per-class thresholds for a target escape rate.

Torch-free (pycocotools for mAP comes with the training extra), so a torch-free worker
can run it in-process or in a child process.
"""

from service.gate.calibrate import Calibration, calibrate, register_calibrated
from service.gate.golden import GoldenSet, load_golden
from service.gate.rules import GateReport, GateRules, RuleResult, gate, judge
from service.gate.scoring import ModelScore, resolve_model, score

__all__ = [
    "Calibration",
    "GateReport",
    "GateRules",
    "GoldenSet",
    "ModelScore",
    "RuleResult",
    "calibrate",
    "gate",
    "judge",
    "load_golden",
    "register_calibrated",
    "resolve_model",
    "score",
]
