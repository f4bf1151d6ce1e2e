"""What every ``lineinspect`` command shares: the ``--config`` and ``--registry`` options
and settings loading that answers a bad setting in one line (click's error, exit 2).

Its own module so that the command groups in other packages (data, jobs, gate) use the
same options without importing :mod:`service.cli`, which imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from service.config import ConfigError, Settings, load_settings

config_option = click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML settings file (env LINEINSPECT_* overrides it; flags override both).",
)
registry_option = click.option(
    "--registry",
    "registry_root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Registry directory (default: the bundled registry, or LINEINSPECT_REGISTRY_ROOT).",
)


def cli_settings(config: Path | None, **overrides: Any) -> Settings:
    """The settings of one command: defaults, ``config``, env, then ``overrides`` (flags;
    None = not given). A wrong setting becomes a one-line click error."""
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
