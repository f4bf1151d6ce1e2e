"""``lineinspect models history|rollback``, and the CLI's one way to move an alias.

The CLI has no serving process to warm a version in: running services load, warm and
hot-swap to the new version within ``registry_poll_s`` of the move.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from service.cli_options import cli_settings, config_option, registry_option
from service.config import Settings
from service.data_cli import cli_store, root_option
from service.errors import LineInspectError
from service.promotion import history
from service.promotion.history import cli_actor, move_alias
from service.promotion.rollback import PRODUCTION, plan_rollback
from service.registry import Registry


def cli_move(
    settings: Settings,
    name: str,
    alias: str,
    version: int,
    reason: str,
    details: dict[str, Any] | None = None,
) -> int | None:
    """Move ``name@alias`` from the CLI, recorded in the store the settings name."""
    with cli_store(settings) as store:
        try:
            return move_alias(
                Registry(settings.registry_root),
                store,
                name,
                alias,
                version,
                cli_actor(),
                reason,
                details,
            )
        except LineInspectError as exc:
            raise click.ClickException(exc.message) from exc


@click.command("history")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@config_option
@registry_option
@root_option
def models_history(
    name: str,
    limit: int,
    as_json: bool,
    config: Path | None,
    registry_root: Path | None,
    data_root: Path | None,
) -> None:
    """Show the moves of NAME's aliases, newest first: when, alias, from -> to, by, why."""
    settings = cli_settings(config, registry_root=registry_root, data_root=data_root)
    try:
        Registry(settings.registry_root).versions(name)
    except LineInspectError as exc:
        raise click.ClickException(exc.message) from exc
    with cli_store(settings) as store:
        rows = [r.to_dict() for r in history.history(store, name, limit)]
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            click.echo(
                f"{row['id']}\t{row['created_at']}\t{row['alias']}\t"
                f"{row['from_version']} -> {row['to_version']}\t{row['actor']}\t{row['reason']}"
            )
    if not rows:
        click.echo(f"no alias moves recorded for {name}", err=True)


@click.command("rollback")
@click.argument("name")
@click.option("--reason", help="Why (kept in the history).")
@config_option
@registry_option
@root_option
def models_rollback(
    name: str,
    reason: str | None,
    config: Path | None,
    registry_root: Path | None,
    data_root: Path | None,
) -> None:
    """Move NAME@production back to the version it had before its last move."""
    settings = cli_settings(config, registry_root=registry_root, data_root=data_root)
    registry = Registry(settings.registry_root)
    with cli_store(settings) as store:
        plan = plan_rollback(registry, store, name)
        details = {"reason": reason, "from": plan.current, "source": plan.source}
        move_alias(registry, store, name, PRODUCTION, plan.target, cli_actor(), "rollback", details)
    click.echo(f"{name}@production: {plan.current} -> {plan.target}")
