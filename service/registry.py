"""The model registry on disk (layout in ../shared/DESIGN.md).

``<root>/<name>/<version>/model.onnx`` + ``card.json`` (+ optional checkpoint), and
``<root>/<name>/aliases.json`` mapping alias → version, replaced atomically
(write a temporary file, fsync, ``os.replace``) so readers never see half a file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import ModelNotFound, RegistryError, RegistryReadOnly

DEFAULT_ALIAS = "production"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REF_RE = re.compile(r"^(?P<name>[^@:]+)(?:@(?P<alias>[^@:]+)|:(?P<version>\d+))?$")
CARD_REQUIRED = ("role", "architecture", "class_names", "input_size")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: ``name`` (its production alias), ``name@alias`` or ``name:version``."""

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse a reference string; raises :class:`ModelNotFound` when malformed."""
        m = _REF_RE.match(text.strip())
        if not m or not _NAME_RE.match(m["name"]):
            raise ModelNotFound(
                f"malformed model reference {text!r} (use name, name@alias or name:version)"
            )
        if m["version"] is not None:
            return cls(m["name"], version=int(m["version"]))
        return cls(m["name"], alias=m["alias"] or DEFAULT_ALIAS)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where it lives and its card."""

    name: str
    version: int
    path: Path
    card: dict[str, Any]

    @property
    def onnx_path(self) -> Path:
        """The ONNX file served for this version."""
        return self.path / "model.onnx"

    @property
    def role(self) -> str:
        """``teacher`` or ``student``."""
        return str(self.card.get("role", "unknown"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide it from a non-root server user
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_card(version_dir: Path, card: dict[str, Any]) -> None:
    """Replace ``version_dir/card.json`` atomically (readers never see half a card)."""
    _atomic_write_json(version_dir / "card.json", card)


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def _writing(root: Path, what: str) -> Iterator[None]:
    """Turn "permission denied" / "read-only file system" into :class:`RegistryReadOnly`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NOT_WRITABLE:
            raise
        raise RegistryReadOnly(
            f"cannot {what}: {exc.strerror} ({exc.filename}); the registry {root} is not "
            f"writable by uid {os.getuid()}: mount it read-write and owned by that user "
            "(docs/operations.md, 'Registry and data volumes')"
        ) from exc


class Registry:
    """Read and change the registry under ``root``. Safe for concurrent readers."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        """Model names, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME_RE.match(p.name))

    def versions(self, name: str) -> list[int]:
        """Registered versions of ``name``, ascending; raises if the model is unknown."""
        model_dir = self.root / name
        if not _NAME_RE.match(name) or not model_dir.is_dir():
            raise ModelNotFound(f"no model named {name!r} in the registry")
        return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def aliases(self, name: str) -> dict[str, int]:
        """Alias → version map of ``name`` (empty when none set)."""
        self.versions(name)
        path = self.root / name / "aliases.json"
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
            return {str(k): int(v) for k, v in data.items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise RegistryError(f"{path} is not a valid alias map: {exc}") from exc

    def aliases_mtime(self, name: str) -> float:
        """Modification time of ``aliases.json`` (0 when absent); cheap change detection."""
        try:
            return (self.root / name / "aliases.json").stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return 0.0

    def get(self, name: str, version: int) -> ModelVersion:
        """A specific version with its card."""
        if version not in self.versions(name):
            raise ModelNotFound(f"model {name!r} has no version {version}")
        path = self.root / name / str(version)
        try:
            card = json.loads((path / "card.json").read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path}/card.json is missing or invalid: {exc}") from exc
        return ModelVersion(name=name, version=version, path=path, card=card)

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """Resolve ``name``, ``name@alias`` or ``name:version`` to a registered version."""
        r = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if r.version is not None:
            return self.get(r.name, r.version)
        aliases = self.aliases(r.name)
        if r.alias not in aliases:
            raise ModelNotFound(
                f"model {r.name!r} has no alias {r.alias!r} (aliases: {sorted(aliases)})"
            )
        return self.get(r.name, aliases[r.alias])

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version`` atomically; returns the previous version."""
        if not _NAME_RE.match(alias):
            raise RegistryError(f"invalid alias name {alias!r}")
        self.get(name, version)
        aliases = self.aliases(name)
        previous = aliases.get(alias)
        aliases[alias] = version
        with _writing(self.root, f"set {name}@{alias}"):
            _atomic_write_json(self.root / name / "aliases.json", aliases)
        return previous

    def register(self, artefact_dir: Path, name: str, alias: str | None = None) -> ModelVersion:
        """Copy an export artefact (``model.onnx`` + ``card.json``) in as the next version.

        Fills ``name``, ``version``, ``created`` and checks/sets ``onnx_sha256``.
        The version directory is assembled aside and renamed in, so a crash never
        leaves a half-registered version visible.
        """
        if not _NAME_RE.match(name):
            raise RegistryError(f"invalid model name {name!r}")
        onnx, card_path = artefact_dir / "model.onnx", artefact_dir / "card.json"
        if not onnx.is_file() or not card_path.is_file():
            raise RegistryError(f"{artefact_dir} must contain model.onnx and card.json")
        try:
            card = json.loads(card_path.read_text())
        except ValueError as exc:
            raise RegistryError(f"{card_path} is not valid JSON: {exc}") from exc
        missing = [k for k in CARD_REQUIRED if k not in card]
        if missing:
            raise RegistryError(f"{card_path} lacks required fields {missing}")
        digest = sha256_file(onnx)
        if card.get("onnx_sha256") not in (None, digest):
            raise RegistryError("card.json onnx_sha256 does not match model.onnx")
        model_dir = self.root / name
        with _writing(self.root, f"register a version of {name}"):
            model_dir.mkdir(parents=True, exist_ok=True)
            existing = self.versions(name)
            version = (existing[-1] + 1) if existing else 1
            card.update(
                name=name, version=version, onnx_sha256=digest,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
            )  # fmt: skip
            staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=".staging-"))
            try:
                staging.chmod(0o755)
                shutil.copy2(onnx, staging / "model.onnx")
                for extra in ("model.pt",):
                    if (artefact_dir / extra).is_file():
                        shutil.copy2(artefact_dir / extra, staging / extra)
                _atomic_write_json(staging / "card.json", card)
                os.rename(staging, model_dir / str(version))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        if alias:
            self.set_alias(name, alias, version)
        return self.get(name, version)
