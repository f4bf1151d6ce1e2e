"""The model registry on disk, as the service uses it: resolve references, read cards,
promote aliases, register artefacts. The format itself (layout, references, aliases,
cards, digests) lives in :mod:`models.registry`, shared with the training side.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.registry import (
    ALIASES_FILE,
    CARD_FILE,
    CARD_REQUIRED,
    NAME_RE,
    ONNX_FILE,
    WEIGHTS_FILE,
    MalformedReference,
    ModelRef,
    RegistryFormatError,
    read_aliases,
    read_card,
    sha256_file,
    write_json_atomic,
)
from service.errors import ModelNotFound, RegistryError, RegistryReadOnly


def parse_ref(text: str) -> ModelRef:
    """Parse a model reference; raises :class:`ModelNotFound` when malformed."""
    try:
        return ModelRef.parse(text)
    except MalformedReference as exc:
        raise ModelNotFound(str(exc)) from exc


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
        return self.path / ONNX_FILE

    @property
    def role(self) -> str:
        """``teacher`` or ``student``."""
        return str(self.card.get("role", "unknown"))


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


def write_card(version_dir: Path, card: dict[str, Any]) -> None:
    """Replace ``version_dir/card.json`` atomically (readers never see half a card)."""
    with _writing(version_dir.parent.parent, f"write the card of {version_dir}"):
        write_json_atomic(version_dir / CARD_FILE, card)


class Registry:
    """Read and change the registry under ``root``. Safe for concurrent readers."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        """Model names, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and NAME_RE.match(p.name))

    def versions(self, name: str) -> list[int]:
        """Registered versions of ``name``, ascending; raises if the model is unknown."""
        model_dir = self.root / name
        if not NAME_RE.match(name) or not model_dir.is_dir():
            raise ModelNotFound(f"no model named {name!r} in the registry")
        return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def aliases(self, name: str) -> dict[str, int]:
        """Alias → version map of ``name`` (empty when none set)."""
        self.versions(name)
        try:
            return read_aliases(self.root / name / ALIASES_FILE)
        except RegistryFormatError as exc:
            raise RegistryError(str(exc)) from exc

    def aliases_mtime(self, name: str) -> float:
        """Modification time of ``aliases.json`` (0 when absent); cheap change detection."""
        try:
            return (self.root / name / ALIASES_FILE).stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return 0.0

    def get(self, name: str, version: int) -> ModelVersion:
        """A specific version with its card."""
        if version not in self.versions(name):
            raise ModelNotFound(f"model {name!r} has no version {version}")
        path = self.root / name / str(version)
        try:
            card = read_card(path)
        except RegistryFormatError as exc:
            raise RegistryError(str(exc)) from exc
        return ModelVersion(name=name, version=version, path=path, card=card)

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """Resolve ``name``, ``name@alias`` or ``name:version`` to a registered version."""
        r = parse_ref(ref) if isinstance(ref, str) else ref
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
        if not NAME_RE.match(alias):
            raise RegistryError(f"invalid alias name {alias!r}")
        self.get(name, version)
        aliases = self.aliases(name)
        previous = aliases.get(alias)
        aliases[alias] = version
        with _writing(self.root, f"set {name}@{alias}"):
            write_json_atomic(self.root / name / ALIASES_FILE, aliases)
        return previous

    def register(self, artefact_dir: Path, name: str, alias: str | None = None) -> ModelVersion:
        """Copy an export artefact (``model.onnx`` + ``card.json``) in as the next version.

        Fills ``name``, ``version``, ``created`` and checks/sets ``onnx_sha256``.
        The version directory is assembled aside and renamed in, so a crash never
        leaves a half-registered version visible.
        """
        if not NAME_RE.match(name):
            raise RegistryError(f"invalid model name {name!r}")
        onnx, card_path = artefact_dir / ONNX_FILE, artefact_dir / CARD_FILE
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
                name=name,
                version=version,
                onnx_sha256=digest,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=".staging-"))
            try:
                staging.chmod(0o755)
                shutil.copy2(onnx, staging / ONNX_FILE)
                for extra in (WEIGHTS_FILE,):
                    if (artefact_dir / extra).is_file():
                        shutil.copy2(artefact_dir / extra, staging / extra)
                write_json_atomic(staging / CARD_FILE, card)
                os.rename(staging, model_dir / str(version))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        if alias:
            self.set_alias(name, alias, version)
        return self.get(name, version)
