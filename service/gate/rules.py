"""The gate: a candidate against production on one golden set, judged by rules
(:class:`~service.gate.spec.GateRules`, the ``gate_rules`` setting)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from service.config import Settings
from service.gate.golden import GoldenSet
from service.gate.scoring import LATENCY_RUNS, ModelScore, accuracy, latencies, open_session
from service.gate.spec import GateRules
from service.registry import ModelVersion


class RuleResult(BaseModel):
    """One rule's verdict with the numbers it compared."""

    rule: str
    passed: bool
    candidate: float | None
    production: float | None
    limit: float | None  # the bound the candidate's figure was held to
    detail: str


class GateReport(BaseModel):
    """Both models' figures side by side, each rule's verdict, and the overall one."""

    passed: bool
    created: str
    golden: str
    golden_fingerprint: str
    golden_images: int
    golden_ok_images: int
    rules: GateRules
    results: list[RuleResult]
    candidate: ModelScore
    production: ModelScore

    def to_json(self) -> str:
        """The report as indented JSON."""
        return self.model_dump_json(indent=2)


def judge(cand: ModelScore, prod: ModelScore, rules: GateRules) -> list[RuleResult]:
    """Each rule's verdict on two scores of the same golden set."""
    out: list[RuleResult] = []
    floor = prod.map50 - rules.map50_margin
    out.append(
        RuleResult(
            rule="map50",
            passed=cand.map50 >= floor,
            candidate=cand.map50,
            production=prod.map50,
            limit=floor,
            detail=f"mAP@.5 not below production's minus {rules.map50_margin}",
        )
    )
    for name, ce in cand.escape.items():
        pe = prod.escape.get(name)
        if ce.rate is None or pe is None or pe.rate is None:
            out.append(
                RuleResult(
                    rule=f"escape:{name}",
                    passed=True,
                    candidate=ce.rate,
                    production=None,
                    limit=None,
                    detail="no golden image contains this class: not judged",
                )
            )
            continue
        limit = pe.rate + rules.max_escape_increase
        out.append(
            RuleResult(
                rule=f"escape:{name}",
                passed=ce.rate <= limit + 1e-12,
                candidate=ce.rate,
                production=pe.rate,
                limit=limit,
                detail=f"escape rate {ce.count}/{ce.total} vs {pe.count}/{pe.total}, at most "
                f"+{rules.max_escape_increase}",
            )
        )
    key = f"b{rules.latency_batch}"
    c_ms, p_ms = cand.latency_ms.get(key), prod.latency_ms.get(key)
    if c_ms is None or p_ms is None:
        out.append(
            RuleResult(
                rule=f"latency_{key}",
                passed=False,
                candidate=c_ms,
                production=p_ms,
                limit=None,
                detail=f"latency at batch {rules.latency_batch} was not measured",
            )
        )
    else:
        limit = p_ms * rules.max_latency_ratio
        out.append(
            RuleResult(
                rule=f"latency_{key}",
                passed=c_ms <= limit,
                candidate=c_ms,
                production=p_ms,
                limit=limit,
                detail=f"median ms per batch-{rules.latency_batch} run at most "
                f"{rules.max_latency_ratio}x production's ({c_ms / p_ms:.2f}x)",
            )
        )
    return out


def report(cand: ModelScore, prod: ModelScore, golden: GoldenSet, rules: GateRules) -> GateReport:
    """The gate report of two scores."""
    results = judge(cand, prod, rules)
    return GateReport(
        passed=all(r.passed for r in results),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        golden=str(golden.path),
        golden_fingerprint=golden.fingerprint,
        golden_images=len(golden.samples),
        golden_ok_images=int(golden.ok.sum()),
        rules=rules,
        results=results,
        candidate=cand,
        production=prod,
    )


def gate(
    candidate: ModelVersion,
    production: ModelVersion,
    golden: GoldenSet,
    rules: GateRules,
    settings: Settings,
    runs: int = LATENCY_RUNS,
) -> GateReport:
    """Score both models on the golden set (latency measured in turns) and judge them."""
    sc, sp = open_session(candidate, settings), open_session(production, settings)
    lc, lp = latencies([sc, sp], runs)
    cand = accuracy(sc, golden, settings, lc, runs)
    prod = accuracy(sp, golden, settings, lp, runs)
    return report(cand, prod, golden, rules)
