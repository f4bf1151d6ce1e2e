"""``lineinspect gate`` and ``lineinspect calibrate`` (entry-point group
``lineinspect.commands``: pycocotools comes with the training extra; torch is not used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from service.cli_options import cli_settings
from service.config import Settings
from service.errors import LineInspectError
from service.gate.calibrate import Calibration, calibrate, register_calibrated
from service.gate.golden import load_golden
from service.gate.rules import GateReport, gate
from service.gate.scoring import LATENCY_RUNS, RateFigure, resolve_model
from service.gate.spec import GateRules
from service.registry import Registry, write_card

_common = [
    click.option(
        "--data",
        "golden_path",
        required=True,
        type=click.Path(exists=True, path_type=Path),
        help="Golden set: a data.yaml (its val split, else train) or its folder.",
    ),
    click.option(
        "--config",
        "config",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="YAML settings file: served thresholds, fail_classes, ORT threads.",
    ),
    click.option(
        "--registry",
        "registry_root",
        type=click.Path(file_okay=False, path_type=Path),
        help="Registry directory (default: the settings' registry_root).",
    ),
]


def _options(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


def _settings(config: Path | None, registry_root: Path | None) -> Settings:
    return cli_settings(config, registry_root=registry_root)


def _pct(r: RateFigure) -> str:
    return "n/a" if r.rate is None else f"{100 * r.rate:5.1f}% ({r.count}/{r.total})"


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def gate_table(rep: GateReport) -> str:
    """A readable side-by-side table of a gate report."""
    c, p = rep.candidate, rep.production
    rows: list[tuple[str, str, str]] = [
        ("mAP@.5", _num(c.map50), _num(p.map50)),
        ("mAP@.5:.95", _num(c.map50_95), _num(p.map50_95)),
    ]
    rows += [
        (f"AP@.5 {n}", _num(v), _num(p.per_class_ap50.get(n))) for n, v in c.per_class_ap50.items()
    ]
    rows += [
        (f"threshold {n}", _num(v, ".3f"), _num(p.thresholds.get(n), ".3f"))
        for n, v in c.thresholds.items()
    ]
    rows += [(f"escape {n}", _pct(v), _pct(p.escape[n])) for n, v in c.escape.items()]
    rows.append(("false reject (ok images)", _pct(c.false_reject), _pct(p.false_reject)))
    rows += [
        (f"latency {k} ms (median)", _num(v, ".2f"), _num(p.latency_ms.get(k), ".2f"))
        for k, v in c.latency_ms.items()
    ]
    w = max(len(r[0]) for r in rows)
    lines = [
        f"golden set {rep.golden} ({rep.golden_images} images, {rep.golden_ok_images} labelled ok)",
        f"{'':{w}}  {'candidate':>20}  {'production':>20}",
        f"{'':{w}}  {c.model[-20:]:>20}  {p.model[-20:]:>20}",
    ]
    lines += [f"{a:{w}}  {b:>20}  {d:>20}" for a, b, d in rows]
    lines.append("")
    for r in rep.results:
        lines.append(f"{'PASS' if r.passed else 'FAIL'}  {r.rule}: {r.detail}")
    lines.append(f"gate {'PASSED' if rep.passed else 'FAILED'}")
    return "\n".join(lines)


def _rules(s: Settings, overrides: dict[str, Any]) -> GateRules:
    """The settings' ``gate_rules`` with the command line's overrides on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if "latency_batch" in given:
        given["latency_batch"] = int(given["latency_batch"])
    return GateRules.model_validate({**s.gate_rules.model_dump(), **given})


@click.command("gate")
@click.argument("candidate")
@click.option("--production", required=True, help="Production model: a reference or a directory.")
@_options
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON report."
)
@click.option(
    "--write-card",
    "store_card",
    is_flag=True,
    help="Store the report in the candidate's card.json (key gate).",
)
@click.option("--map50-margin", type=float, default=None, help="Default: gate_rules' (0).")
@click.option(
    "--max-escape-increase", type=float, default=None, help="Default: gate_rules' (0.02)."
)
@click.option("--max-latency-ratio", type=float, default=None, help="Default: gate_rules' (1.2).")
@click.option(
    "--latency-batch", type=click.Choice(["1", "8"]), default=None, help="Default: gate_rules' (8)."
)
@click.option(
    "--latency-runs", type=click.IntRange(1, 1000), default=LATENCY_RUNS, show_default=True
)
def gate_cmd(
    candidate: str,
    production: str,
    golden_path: Path,
    config: Path | None,
    registry_root: Path | None,
    out: Path | None,
    store_card: bool,
    latency_runs: int,
    **rule_overrides: Any,
) -> None:
    """Score CANDIDATE and --production on the golden set and judge the candidate by the
    gate rules; exit 0 when it passes, 1 when it fails."""
    s = _settings(config, registry_root)
    rules = _rules(s, rule_overrides)
    try:
        cand, prod = (
            resolve_model(candidate, s.registry_root),
            resolve_model(production, s.registry_root),
        )
        rep = gate(cand, prod, load_golden(golden_path), rules, s, latency_runs)
        if store_card:
            write_card(cand.path, {**cand.card, "gate": rep.model_dump(mode="json")})
    except (LineInspectError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if out:
        out.write_text(rep.to_json() + "\n")
    click.echo(gate_table(rep))
    raise SystemExit(0 if rep.passed else 1)


def calibration_table(cal: Calibration) -> str:
    """A readable per-class table of a calibration."""
    lines = [
        f"{cal.model} on {cal.golden} ({cal.golden_images} images): target escape "
        f"<= {cal.target:.3f}",
        f"{'class':16} {'images':>6} {'thr before':>10} {'thr chosen':>10} "
        f"{'escape before':>20} {'escape after':>20}  status",
    ]
    for n, c in cal.classes.items():
        lines.append(
            f"{n:16} {c.images:6d} {c.previous:10.3f} {c.threshold:10.3f} "
            f"{_pct(c.escape_before):>20} {_pct(c.escape):>20}  {c.status}"
            + (f": {c.note}" if c.note else "")
        )
    if cal.false_reject.total:
        lines.append(
            f"false reject on ok images: {_pct(cal.false_reject_before)} -> "
            f"{_pct(cal.false_reject)}"
        )
    else:
        lines.append("false reject: the golden set has no image labelled ok: not measured")
    return "\n".join(lines)


@click.command("calibrate")
@click.argument("ref")
@_options
@click.option(
    "--max-escape",
    type=click.FloatRange(0, 1, max_open=True),
    required=True,
    help="Target image-level escape rate per class (0.05 = 5 %).",
)
@click.option("--register", is_flag=True, help="Register a new version with these thresholds.")
@click.option("--name", default=None, help="Registry name of the new version (default: REF's).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON.")
def calibrate_cmd(
    ref: str,
    golden_path: Path,
    config: Path | None,
    registry_root: Path | None,
    max_escape: float,
    register: bool,
    name: str | None,
    out: Path | None,
) -> None:
    """Choose per-class score thresholds of REF so that each class's image-level escape rate
    on the golden set is at most --max-escape: the highest that meets it."""
    s = _settings(config, registry_root)
    try:
        model = resolve_model(ref, s.registry_root)
        cal = calibrate(model, load_golden(golden_path), max_escape, s)
        new = register_calibrated(Registry(s.registry_root), model, cal, name) if register else None
    except (LineInspectError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if out:
        out.write_text(cal.model_dump_json(indent=2) + "\n")
    click.echo(calibration_table(cal))
    if new is not None:
        click.echo(f"registered {new.name}:{new.version} with class_thresholds")
