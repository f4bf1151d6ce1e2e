"""The one settings class of lineinspect (pydantic-settings).

Sources, highest priority first: explicit keyword arguments (CLI flags), environment
variables ``LINEINSPECT_*``, the optional YAML file given with ``--config``, defaults.
Nothing is read at import time: :func:`load_settings` is called by the CLI / app factory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.config_loop import LoopSettings
from service.config_serving import ServingSettings


class ConfigError(ValueError):
    """The configuration is invalid; the message names each wrong setting and why."""


class Settings(LoopSettings, ServingSettings, BaseSettings):
    """Every setting of the service, workers and CLI. See docs/configuration.md. The fields
    are declared by topic in :mod:`service.config_serving` and :mod:`service.config_loop`;
    the sources, validation and loading are here."""

    model_config = SettingsConfigDict(
        env_prefix="LINEINSPECT_", extra="forbid", validate_default=True
    )

    @field_validator("models")
    @classmethod
    def _models_not_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one model reference is needed")
        return v

    @field_validator("class_thresholds")
    @classmethod
    def _thresholds_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: t for k, t in v.items() if not 0 <= t <= 1}
        if bad:
            raise ValueError(f"thresholds must be within [0, 1]: {bad}")
        return v

    @field_validator("admin_token")
    @classmethod
    def _no_admin_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            raise ValueError(
                "admin_token is not supported, scoped tokens protect every route: run "
                "`lineinspect token new --scopes admin` and put the entry it prints under "
                "`tokens` (docs/operations.md, Security)"
            )
        return v

    @model_validator(mode="after")
    def _registry_exists(self) -> Settings:
        if not self.registry_root.is_dir():
            raise ValueError(f"registry_root {self.registry_root} is not a directory")
        return self

    @model_validator(mode="after")
    def _grpc_consistent(self) -> Settings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("grpc_tls_cert and grpc_tls_key must be set together")
        if self.grpc_tls_client_ca is not None and self.grpc_tls_cert is None:
            raise ValueError("grpc_tls_client_ca needs grpc_tls_cert and grpc_tls_key (TLS)")
        for path in (self.grpc_tls_cert, self.grpc_tls_key, self.grpc_tls_client_ca):
            if path is not None and not path.is_file():
                raise ValueError(f"gRPC TLS file {path} does not exist")
        if self.grpc_stream_buffer < self.grpc_stream_in_flight:
            raise ValueError("grpc_stream_buffer must be >= grpc_stream_in_flight")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No dotenv or secret files: init kwargs (flags + YAML, see load_settings) and env.
        return init_settings, env_settings


def _format_errors(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(settings)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build validated settings from defaults, an optional YAML file, env and overrides.

    Raises :class:`ConfigError` naming every wrong setting and why.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping of settings")
        file_values = loaded
    explicit = {k: v for k, v in overrides.items() if v is not None}
    # Explicit flags are init kwargs (highest). File values also travel as init kwargs,
    # so drop those an environment variable sets: env outranks the file.
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    env_keys = {k[len(prefix) :].lower() for k in os.environ if k.upper().startswith(prefix)}
    values = {k: v for k, v in file_values.items() if k.lower() not in env_keys}
    values.update(explicit)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from exc


def child_environment(overrides: dict[str, str]) -> dict[str, str]:
    """The environment for a child process (a training worker or run): this process's
    own, with ``overrides`` on top. The one place outside pydantic-settings that touches
    ``os.environ``."""
    return {**os.environ, **overrides}
