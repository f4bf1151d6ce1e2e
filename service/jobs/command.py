"""A job as a training-CLI command line, and its progress read back from the run.

``train`` and ``distil`` write ``OUT/results.jsonl`` (one record per finished epoch:
``epoch``, ``time_s``, ``loss_*``, and ``map50``/``map50_95`` on evaluation epochs) and
``OUT/last.pt``; ``--resume`` continues from ``last.pt`` when it exists, so the worker
always passes it. ``evaluate`` runs ``lineinspect val`` with ``--json-out``; ``export``
runs ``lineinspect export CKPT --out RUN/model`` (``model.onnx`` + ``card.json``: what
the registry registers). ``prune`` runs ``lineinspect prune --out RUN --resume``: its
stages write ``RUN/sparse/results.jsonl`` and ``RUN/finetune/results.jsonl`` (one epoch
count, the stages in turn) and ``RUN/export/`` (the pruned model and its card).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from service.jobs.schema import Job, JobKind, utcnow
from service.jobs.spec import FILE_PIN

log = logging.getLogger(__name__)

SUBCOMMAND = {
    JobKind.TRAIN: "train",
    JobKind.DISTIL: "distil",
    JobKind.PRUNE: "prune",
    JobKind.EVALUATE: "val",
    JobKind.EXPORT: "export",
}
RESULTS = "results.jsonl"
REPORT = "report.json"
EXPORT_DIR = "model"
LOG = "job.log"
#: ``lineinspect train --epochs`` default, for progress of a job that sets none.
DEFAULT_EPOCHS = 100
#: A prune run's training stages, their epoch parameters and ``lineinspect prune`` defaults.
PRUNE_STAGES = (("sparse", "sparse_epochs", 30), ("finetune", "finetune_epochs", 30))
PRUNE_EXPORT_DIR = "export"


def _option(name: str, value: Any) -> list[str]:
    opt = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [opt] if value else []
    if isinstance(value, list):
        return [a for v in value for a in _option(name, v)]
    return [opt, str(value)]


def child_args(job: Job, run_dir: Path, threads: int, registry_root: Path) -> list[str]:
    """The ``lineinspect`` arguments (after the program) that run ``job`` in ``run_dir``."""
    kind = JobKind(job.kind)
    params: dict[str, Any] = dict(job.params)
    for name, pin in (job.base_refs or {}).items():  # run the version the key names
        if name in params and not pin.startswith(FILE_PIN):
            params[name] = pin
    args = [SUBCOMMAND[kind]]
    if kind is JobKind.EXPORT:  # no threads option: export is short
        args += [str(params.pop("ckpt")), "--out", str(run_dir / EXPORT_DIR)]
        return args + [a for name in sorted(params) for a in _option(name, params[name])]
    if kind is JobKind.EVALUATE:
        args += [str(params.pop("ckpt")), "--json-out", str(run_dir / REPORT)]
    else:
        args += ["--out", str(run_dir), "--resume"]
    if kind in (JobKind.DISTIL, JobKind.PRUNE) and "registry" not in params:
        args += ["--registry", str(registry_root)]
    args += ["--threads", str(threads)]
    for name in sorted(params):
        args += _option(name, params[name])
    return args


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The epoch records of a run (a torn last line, being written, is skipped)."""
    path = run_dir / RESULTS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "epoch" in rec:
            out.append(rec)
    return out


def job_records(job: Job, run_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """The epoch records of a job and its epoch total. A prune job's stages count as one
    run: the fine-tuning epochs follow the sparse ones, each record names its ``stage``."""
    if JobKind(job.kind) is not JobKind.PRUNE:
        return read_records(run_dir), int(job.params.get("epochs", DEFAULT_EPOCHS))
    records: list[dict[str, Any]] = []
    offset = 0
    for stage, param, default in PRUNE_STAGES:
        for r in read_records(run_dir / stage):
            records.append({**r, "epoch": offset + int(r["epoch"]), "stage": stage})
        offset += int(job.params.get(param, default))
    return records, offset


def progress(job: Job, run_dir: Path) -> dict[str, Any] | None:
    """Epoch of total, latest losses and metrics, ETA; None before the first epoch."""
    records, total = job_records(job, run_dir)
    if not records:
        return None
    last = records[-1]
    times = [float(r["time_s"]) for r in records[-5:] if "time_s" in r]
    remaining = max(0, total - int(last["epoch"]))
    metrics = next(
        (
            {k: r[k] for k in ("epoch", "map50", "map50_95") if k in r}
            for r in reversed(records)
            if "map50" in r
        ),
        None,
    )
    stage = {"stage": last["stage"]} if "stage" in last else {}
    return {
        **stage,
        "epoch": int(last["epoch"]),
        "epochs": total,
        "losses": {
            k[5:]: v for k, v in last.items() if k.startswith("loss_") and k != "loss_weights"
        },
        "metrics": metrics,
        "eta_s": round(remaining * sum(times) / len(times), 1) if times else None,
        "updated_at": utcnow().isoformat(),
    }


def result(job: Job, run_dir: Path) -> dict[str, Any]:
    """The JSON result of a succeeded job: what the next step of a pipeline reads."""
    out: dict[str, Any] = {"run_dir": str(run_dir)}
    if JobKind(job.kind) is JobKind.EXPORT:
        out["export_dir"] = str(run_dir / EXPORT_DIR)
        return out
    if JobKind(job.kind) is JobKind.PRUNE:
        return out | _prune_result(run_dir)
    if JobKind(job.kind) is JobKind.EVALUATE:
        try:
            out["report"] = json.loads((run_dir / REPORT).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("job %s: no readable report (%s)", job.id, exc)
        return out
    for name in ("best", "last"):
        ck = run_dir / f"{name}.pt"
        if ck.is_file():
            out[f"{name}_checkpoint"] = str(ck)
    records = read_records(run_dir)
    if records:
        out["epochs"] = int(records[-1]["epoch"])
        scored = [r for r in records if "map50" in r]
        if scored:
            best = max(scored, key=lambda r: float(r["map50"]))
            out["best"] = {k: best[k] for k in ("epoch", "map50", "map50_95") if k in best}
    return out


def _prune_result(run_dir: Path) -> dict[str, Any]:
    """A prune job's export and the card's metrics and pruning record."""
    out: dict[str, Any] = {"export_dir": str(run_dir / PRUNE_EXPORT_DIR)}
    try:
        card = json.loads((run_dir / PRUNE_EXPORT_DIR / "card.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("prune run %s: no readable card (%s)", run_dir, exc)
        return out
    out["metrics"] = {k: card.get("metrics", {}).get(k) for k in ("map50", "map50_95")}
    out["pruning"] = card.get("pruning")
    return out


def log_tail(run_dir: Path, max_bytes: int = 4096) -> str:
    """The last ``max_bytes`` of the job's log (progress-bar redraws folded)."""
    path = run_dir / LOG
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - max_bytes))
        raw = f.read().decode(errors="replace")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in raw.splitlines())
