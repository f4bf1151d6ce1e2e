"""The ``lineinspect`` command line.

Serving commands live here (torch-free). Training commands (train, val, export,
anchors, distil) are contributed by models/ through the ``lineinspect.commands``
entry-point group and imported only when invoked, so this CLI runs without torch.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click

from models.registry import ROOT_PROVIDER_KEY
from service.auth.cli import token
from service.cli_options import cli_settings, config_option, registry_option
from service.data_cli import root_option
from service.errors import LineInspectError
from service.jobs.cli import jobs, worker_train
from service.promotion.cli import cli_move, models_history, models_rollback
from service.registry import Registry

PLUGIN_GROUP = "lineinspect.commands"


class _Cli(click.Group):
    """A group that also offers the plugin commands, loading them lazily."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        ep = self._plugins().get(cmd_name)
        if ep is None:
            return None
        try:
            loaded = ep.load()
        except ImportError as exc:
            # A serving-only install (no torch) still lists the command, so --help works,
            # and running it says what to install.
            return _needs_training_extra(cmd_name, exc)
        if not isinstance(loaded, click.Command):
            return None
        if loaded.callback is not None:
            loaded.callback = _training_guard(cmd_name, loaded.callback)
        return loaded


#: Packages only the training extra installs: a plugin command importing one of them
#: lazily, on a serving-only install, gets a one-line answer instead of a traceback.
TRAINING_ONLY = frozenset({"torch", "onnx", "onnxscript", "pycocotools", "tqdm", "torch_pruning"})


def _training_guard(name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in TRAINING_ONLY:
                raise
            raise click.ClickException(
                f"'{name}' needs the training extra (pip install 'lineinspect[train]'): {exc}"
            ) from exc

    return guarded


def _needs_training_extra(name: str, exc: ImportError) -> click.Command:
    def fail(**_: Any) -> None:
        raise click.ClickException(
            f"'{name}' needs the training extra (pip install 'lineinspect[train]'): {exc}"
        )

    return click.Command(
        name,
        callback=fail,
        context_settings={"ignore_unknown_options": True},
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        help="Needs the training extra: pip install 'lineinspect[train]'.",
        short_help="(needs the training extra)",
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(cls=_Cli)
@click.version_option(package_name="lineinspect")
@click.pass_context
def main(ctx: click.Context) -> None:
    """lineinspect: inline defect inspection for production lines."""
    # Training commands given no --registry read the configured registry_root; the
    # settings are loaded only if one asks for it.
    ctx.meta[ROOT_PROVIDER_KEY] = lambda: cli_settings(None).registry_root


main.add_command(token)


@main.command()
@config_option
@registry_option
@click.option("--host", help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, help="REST port (default 8000).")
@click.option("--grpc-port", type=int, help="gRPC port; 0 disables gRPC.")
@click.option("--model", "models", multiple=True, help="Model reference to serve (repeatable).")
def serve(
    config: Path | None,
    registry_root: Path | None,
    host: str | None,
    port: int | None,
    grpc_port: int | None,
    models: tuple[str, ...],
) -> None:
    """Start the inspection service (REST, metrics, and gRPC when --grpc-port is set)."""
    from service.server import run_server

    settings = cli_settings(
        config,
        registry_root=registry_root,
        host=host,
        port=port,
        grpc_port=grpc_port,
        models=list(models) or None,
    )
    _setup_logging(settings.log_level)
    try:
        run_server(settings)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc


@main.group()
def config() -> None:
    """Show the effective configuration or the settings reference."""


@config.command("show")
@config_option
def config_show(config: Path | None) -> None:
    """Print the effective settings (flags aside) as YAML; secrets are masked."""
    import yaml

    data = cli_settings(config).model_dump(mode="json")
    if data.get("admin_token"):
        data["admin_token"] = "********"
    click.echo(yaml.safe_dump(data, sort_keys=True))


@config.command("reference")
def config_reference() -> None:
    """Print the Markdown reference of every setting (docs/configuration.md)."""
    from service.config_doc import settings_reference

    click.echo(settings_reference(), nl=False)


@main.group()
def models() -> None:
    """Inspect and change the model registry."""


def _registry(config: Path | None, registry_root: Path | None) -> Registry:
    return Registry(cli_settings(config, registry_root=registry_root).registry_root)


@models.command("list")
@config_option
@registry_option
def models_list(config: Path | None, registry_root: Path | None) -> None:
    """List models, versions and aliases."""
    reg = _registry(config, registry_root)
    for name in reg.names():
        aliases = ", ".join(f"{a}={v}" for a, v in sorted(reg.aliases(name).items())) or "-"
        click.echo(f"{name}\tversions={reg.versions(name)}\taliases: {aliases}")


@models.command("show")
@click.argument("ref")
@config_option
@registry_option
def models_show(ref: str, config: Path | None, registry_root: Path | None) -> None:
    """Show the card of REF (name, name@alias or name:version) as JSON."""
    try:
        mv = _registry(config, registry_root).resolve(ref)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps(mv.card, indent=2, sort_keys=True))


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True)
@click.option("--reason", help="Why (kept in the promotion history).")
@config_option
@registry_option
@root_option
def models_promote(
    name: str,
    version: int,
    alias: str,
    reason: str | None,
    config: Path | None,
    registry_root: Path | None,
    data_root: Path | None,
) -> None:
    """Point ALIAS of NAME at VERSION; running services hot-swap to it."""
    settings = cli_settings(config, registry_root=registry_root, data_root=data_root)
    prev = cli_move(settings, name, alias, version, "manual", {"reason": reason})
    click.echo(f"{name}@{alias}: {prev} -> {version}")


@models.command("register")
@click.argument("artefact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name in the registry.")
@click.option("--alias", help="Also point this alias at the new version.")
@config_option
@registry_option
@root_option
def models_register(
    artefact: Path,
    name: str,
    alias: str | None,
    config: Path | None,
    registry_root: Path | None,
    data_root: Path | None,
) -> None:
    """Register an export directory (model.onnx + card.json) as NAME's next version."""
    settings = cli_settings(config, registry_root=registry_root, data_root=data_root)
    try:
        mv = Registry(settings.registry_root).register(artefact, name)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
    if alias:
        cli_move(settings, name, alias, mv.version, "register")
    click.echo(f"registered {mv.name}:{mv.version}" + (f" ({alias})" if alias else ""))


models.add_command(models_history)
models.add_command(models_rollback)


@main.command()
@click.argument("source")
@click.option("--model", "model_ref", default=None, help="Model reference (default: first served).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="JSON file (default stdout)."
)
@click.option("--batch", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--score-threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Keep detections scoring above this (default: score_threshold, else the model "
    "card's recommendation). Use 0.001 to score the output for mAP: the operating "
    "threshold drops the low-confidence detections a precision-recall curve needs.",
)
@config_option
@registry_option
def predict(
    source: str,
    model_ref: str | None,
    out: Path | None,
    batch: int,
    score_threshold: float | None,
    config: Path | None,
    registry_root: Path | None,
) -> None:
    """Inspect SOURCE (image, directory or glob) offline; write one record per image."""
    from models.processing import PostprocessConfig
    from service.engine import ModelSession
    from service.predict import Unreadable, expand_source, predict_files

    s = cli_settings(config, registry_root=registry_root, score_threshold=score_threshold)
    paths = expand_source(source)
    if not paths:
        raise click.ClickException(f"no images found at {source!r}")
    try:
        mv = Registry(s.registry_root).resolve(model_ref or s.models[0])
        session = ModelSession(
            mv, s.providers, s.intra_op_threads, s.inter_op_threads, s.ort_spinning
        )
        post = PostprocessConfig.for_classes(
            session.spec.class_names,
            s.score_threshold,
            s.class_thresholds,
            s.iou_threshold,
            s.max_detections,
            card=mv.card,
        )
        records, unreadable = [], []
        with click.progressbar(paths, label="predict", file=sys.stderr) as bar:
            for i in range(0, len(paths), batch):
                chunk = paths[i : i + batch]
                for r in predict_files(session, chunk, post, s.max_pixels, batch, s.fail_classes):
                    if isinstance(r, Unreadable):
                        unreadable.append(r)
                    else:
                        records.append(r.model_dump())
                bar.update(len(chunk))
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
    text = json.dumps(records, indent=2)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n")
        click.echo(f"wrote {len(records)} records to {out}", err=True)
    # One bad file must not cost the others their records: they are written first, then
    # the run fails so that a script notices what was left out.
    for u in unreadable:
        click.echo(f"skipped {u.path}: {u.reason}", err=True)
    if unreadable:
        raise click.ClickException(f"{len(unreadable)} of {len(paths)} images could not be read")


@main.group()
def worker() -> None:
    """Workers behind the Redis frame queue (queue=redis)."""


@worker.command("infer")
@config_option
@registry_option
@click.option("--model", "models", multiple=True, help="Model reference to warm (repeatable).")
@click.option("--redis-url", help="Redis URL (default LINEINSPECT_REDIS_URL).")
@click.option("--metrics-port", type=int, help="Port of /metrics, /healthz, /readyz (9100).")
@click.option("--consumer", help="Consumer name in the group (default <hostname>-<pid>).")
def worker_infer(
    config: Path | None,
    registry_root: Path | None,
    models: tuple[str, ...],
    redis_url: str | None,
    metrics_port: int | None,
    consumer: str | None,
) -> None:
    """Consume frames from the Redis stream, inspect them, deliver the answers."""
    from service.worker_app import run_worker

    settings = cli_settings(
        config,
        registry_root=registry_root,
        models=list(models) or None,
        redis_url=redis_url,
        worker_metrics_port=metrics_port,
        worker_consumer=consumer,
    )
    _setup_logging(settings.log_level)
    try:
        run_worker(settings)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc


# --- data store (service/data_cli.py) ---
from service.data_cli import data  # noqa: E402

main.add_command(data)
main.add_command(jobs)
worker.add_command(worker_train)


if __name__ == "__main__":  # pragma: no cover
    main()
