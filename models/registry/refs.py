"""Model references: ``name`` (its default alias), ``name@alias`` or ``name:version``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.registry.errors import MalformedReference

#: The alias a bare ``name`` means.
DEFAULT_ALIAS = "production"
#: Valid model and alias names (also directory names in the registry).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REF_RE = re.compile(r"^(?P<name>[^@:]+)(?:@(?P<alias>[^@:]+)|:(?P<version>\d+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: ``name`` (its production alias), ``name@alias`` or ``name:version``."""

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse a reference string; raises :class:`MalformedReference` when malformed."""
        m = _REF_RE.match(text.strip())
        if not m or not NAME_RE.match(m["name"]):
            raise MalformedReference(
                f"malformed model reference {text!r} (use name, name@alias or name:version)"
            )
        if m["version"] is not None:
            return cls(m["name"], version=int(m["version"]))
        return cls(m["name"], alias=m["alias"] or DEFAULT_ALIAS)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}"
