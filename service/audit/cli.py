"""``lineinspect audit``: audit rows as CSV or JSON, with the API's filters (torch-free).

Reads the store named by the settings (``data_root`` / ``database_url``) directly, so it
works with the service stopped; rows come newest first, read in chunks.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import click

from service.audit import queries
from service.audit.rows import to_json
from service.cli_options import cli_settings, config_option
from service.data_cli import cli_store, root_option

#: CSV columns; ``model`` is split in two, ``counts`` and ``thresholds`` are JSON.
CSV_COLUMNS = (
    "frame_id",
    "time",
    "edge",
    "line",
    "camera",
    "image_sha256",
    "model_name",
    "model_version",
    "verdict",
    "max_score",
    "counts",
    "thresholds",
)


def _when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return queries.utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from exc


def csv_row(item: dict[str, Any]) -> list[Any]:
    """One JSON row as CSV cells, in :data:`CSV_COLUMNS` order."""
    flat = {
        **item,
        "model_name": item["model"]["name"],
        "model_version": item["model"]["version"],
        "counts": json.dumps(item["counts"], sort_keys=True),
        "thresholds": json.dumps(item["thresholds"], sort_keys=True),
    }
    return ["" if flat[c] is None else flat[c] for c in CSV_COLUMNS]


def write(items: Iterator[dict[str, Any]], fmt: str, out: TextIO) -> int:
    """Write ``items`` as ``csv`` (header + rows) or ``json`` (one array); returns how many."""
    n = 0
    if fmt == "csv":
        w = csv.writer(out)
        w.writerow(CSV_COLUMNS)
        for item in items:
            w.writerow(csv_row(item))
            n += 1
        return n
    out.write("[")
    for item in items:
        out.write(("\n" if n == 0 else ",\n") + json.dumps(item))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


@click.command("audit")
@click.option("--line", help="Only this line.")
@click.option("--camera", help="Only this camera.")
@click.option("--verdict", type=click.Choice(["pass", "fail"]), help="Only this verdict.")
@click.option("--model", help="Only this model: name or name:version.")
@click.option("--from", "start", callback=_when, help="From this time (ISO 8601; no zone = UTC).")
@click.option("--to", "end", callback=_when, help="Before this time (ISO 8601; no zone = UTC).")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows (default all).")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="json", show_default=True
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="File (default stdout)."
)
@config_option
@root_option
def audit(
    line: str | None,
    camera: str | None,
    verdict: str | None,
    model: str | None,
    start: datetime | None,
    end: datetime | None,
    offset: int,
    limit: int | None,
    fmt: str,
    out: Path | None,
    config: Path | None,
    data_root: Path | None,
) -> None:
    """The verdict audit trail, newest first (docs/audit.md)."""
    f = queries.Filters(line, camera, verdict, model, start, end)
    settings = cli_settings(config, data_root=data_root)
    with cli_store(settings) as store, store.transaction() as s:
        rows = islice(queries.every(s, f), offset, None if limit is None else offset + limit)
        items = (to_json(r) for r in rows)
        if out is None:
            n = write(items, fmt, sys.stdout)
        else:
            with out.open("w", newline="", encoding="utf-8") as fh:
                n = write(items, fmt, fh)
    click.echo(f"{n} audit rows", err=True)
