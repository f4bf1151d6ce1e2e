"""``lineinspect token new``: make a token and print the settings entry for it."""

from __future__ import annotations

import json

import click
import yaml

from service.auth.tokens import Scope, TokenEntry, hash_token, new_token

SCOPES = ", ".join(s.value for s in Scope)


def _scopes(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[Scope, ...]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    try:
        scopes = tuple(dict.fromkeys(Scope(n) for n in names))
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; scopes are {SCOPES}") from None
    if not scopes:
        raise click.BadParameter(f"name at least one scope of {SCOPES}")
    return scopes


@click.group()
def token() -> None:
    """Access tokens (the service keeps only their SHA-256)."""


@token.command("new")
@click.option(
    "--scopes", required=True, callback=_scopes, help=f"Comma-separated scopes: {SCOPES}."
)
@click.option("--name", help="A name for logs and audits (default: token-<hash prefix>).")
def token_new(scopes: tuple[Scope, ...], name: str | None) -> None:
    """Print a new token once, and the settings entry that grants its scopes."""
    secret = new_token()
    digest = hash_token(secret)
    entry = TokenEntry(name=name or f"token-{digest[:8]}", sha256=digest, scopes=scopes)
    plain = {"name": entry.name, "sha256": entry.sha256, "scopes": [s.value for s in scopes]}
    click.echo("Token (shown only now; give it to the client, keep it in a secret store):")
    click.echo(f"  {secret}")
    click.echo("")
    click.echo("Settings entry, for the `tokens` list of the YAML settings file:")
    click.echo("tokens:")
    click.echo(yaml.safe_dump([plain], sort_keys=False, default_flow_style=None).rstrip())
    click.echo("")
    click.echo("or as the environment (LINEINSPECT_TOKENS holds the whole list, as JSON):")
    click.echo(f"  LINEINSPECT_TOKENS='{json.dumps([plain])}'")
