"""The settings reference (docs/configuration.md), generated from :class:`Settings`.

Generated, not hand-written, so it cannot drift: a unit test compares the committed
file with :func:`settings_reference`. Regenerate with
``lineinspect config reference > docs/configuration.md``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from service.config import Settings

HEADER = """# Configuration reference

Every setting of `lineinspect serve` and `lineinspect worker infer`. Sources, strongest
first: command-line flags, environment variables `LINEINSPECT_<NAME>` (lists and maps
as JSON, e.g. `LINEINSPECT_MODELS='["neu-det-student"]'`), the YAML file given with
`--config`, then these defaults. Invalid values stop start-up with a message naming
each wrong setting.

Generated from `service/config.py` (fields in `config_serving.py`, `config_loop.py`) by
`lineinspect config reference`; do not edit by hand.

| setting | environment variable | default | description |
|---|---|---|---|
"""


def _default(name: str, field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if name == "registry_root":  # an absolute, machine-specific path: show it symbolically
        return "`registry/` (bundled)"
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    if isinstance(value, BaseModel):  # a nested section: its fields
        value = value.model_dump(mode="json")
    return f"`{json.dumps(value, default=str)}`"


def settings_reference() -> str:
    """Markdown table of every setting: name, env var, default, description."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = [
        f"| `{name}` | `{prefix}{name.upper()}` | {_default(name, f)} | "
        f"{(f.description or '').replace('|', '/')} |"
        for name, f in Settings.model_fields.items()
    ]
    return HEADER + "\n".join(rows) + "\n"
