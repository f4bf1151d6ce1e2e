"""``lineinspect data``: import, list, show, snapshot and export datasets (torch-free)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from service.cli_options import cli_settings, config_option
from service.config import Settings
from service.errors import LineInspectError
from service.store import datasets, exports, importer, snapshots
from service.store.store import Store, open_store

root_option = click.option(
    "--data-root",
    "data_root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data store root (default var/, or LINEINSPECT_DATA_ROOT).",
)


def _settings(config: Path | None, data_root: Path | None) -> Settings:
    return cli_settings(config, data_root=data_root)


@contextmanager
def cli_store(settings: Settings) -> Iterator[Store]:
    """The store the settings name, for one command; its errors become click errors."""
    try:
        store = open_store(settings)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
    try:
        yield store
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        store.close()


def _base_url(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


@click.group()
def data() -> None:
    """The data store: labelled images in, snapshots and exports out (docs/data.md)."""


@data.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--dataset", required=True, help="Dataset name (created when absent).")
@click.option("--format", "fmt", required=True, type=click.Choice(importer.FORMATS))
@click.option("--golden", is_flag=True, help="These images are the dataset's golden set.")
@click.option("--add-classes", is_flag=True, help="Widen the class list with unknown classes.")
@click.option("--author", default="import", show_default=True, help="Author of the labels.")
@config_option
@root_option
def data_import(
    path: Path,
    dataset: str,
    fmt: str,
    golden: bool,
    add_classes: bool,
    author: str,
    config: Path | None,
    data_root: Path | None,
) -> None:
    """Import a folder or .zip (yolo, voc, coco, or a Label Studio JSON export)."""
    settings = _settings(config, data_root)
    bar: Any = None

    def progress(n: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=f"importing {path.name}", file=sys.stderr)
        bar.update(1)
        if n == total:
            bar.render_finish()

    with cli_store(settings) as store:
        summary = importer.run(store, path, dataset, fmt, golden, add_classes, author, progress)
    click.echo(summary.line())
    if summary.refused and not (summary.added or summary.duplicates or summary.relabelled):
        raise SystemExit(1)


@data.command("list")
@config_option
@root_option
def data_list(config: Path | None, data_root: Path | None) -> None:
    """Datasets with their sample counts."""
    with cli_store(_settings(config, data_root)) as store, store.transaction() as s:
        for ds in datasets.list_all(s):
            c = datasets.counts(s, ds)
            states = ", ".join(f"{k} {v}" for k, v in sorted(c["states"].items()))
            click.echo(f"{ds.name}: {c['samples']} samples ({states}); {len(ds.classes)} classes")


@data.command("show")
@click.argument("dataset")
@config_option
@root_option
def data_show(dataset: str, config: Path | None, data_root: Path | None) -> None:
    """Counts per class, split and state of DATASET (JSON)."""
    with cli_store(_settings(config, data_root)) as store, store.transaction() as s:
        info: dict[str, Any] = datasets.counts(s, datasets.get(s, dataset))
        info["snapshots"] = [
            {
                "fingerprint": sn.fingerprint,
                "created_at": sn.created_at.isoformat(),
                "counts": sn.counts,
            }
            for sn in snapshots.list_for(s, datasets.get(s, dataset))
        ]
    click.echo(json.dumps(info, indent=2))


@data.command("snapshot")
@click.argument("dataset")
@config_option
@root_option
def data_snapshot(dataset: str, config: Path | None, data_root: Path | None) -> None:
    """Freeze DATASET as an immutable snapshot; prints its data.yaml for train/distil."""
    with cli_store(_settings(config, data_root)) as store, store.transaction() as s:
        snap, yaml_path, created = snapshots.create(
            s, store.blobs, datasets.get(s, dataset), store.snapshots_root
        )
        counts = ", ".join(f"{k} {v}" for k, v in snap.counts.items())
    word = "snapshot" if created else "unchanged, snapshot"
    click.echo(f"{word} {snap.fingerprint[:16]} ({counts}): {yaml_path}")


@data.command("export")
@click.argument("dataset")
@click.option("--format", "fmt", required=True, type=click.Choice(exports.FORMATS))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@config_option
@root_option
def data_export(
    dataset: str, fmt: str, out: Path, config: Path | None, data_root: Path | None
) -> None:
    """Export DATASET as Label Studio tasks (+ labeling config), YOLO or COCO."""
    settings = _settings(config, data_root)
    with cli_store(settings) as store:
        done = exports.export(
            store,
            dataset,
            fmt,
            out,
            _base_url(settings),
            settings.label_studio_from_name,
            settings.label_studio_to_name,
        )
    click.echo(f"exported {dataset} as {fmt} to {out}: {json.dumps(done)}")
