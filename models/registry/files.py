"""The registry's files: names, the bundled root, reading aliases and cards, writing
JSON atomically (temporary file, fsync, ``os.replace``) and content digests."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from models.registry.errors import RegistryFormatError

#: The registry shipped with the repository (detectors trained on NEU-DET).
BUNDLED_ROOT = Path(__file__).resolve().parents[2] / "registry"
ALIASES_FILE = "aliases.json"
CARD_FILE = "card.json"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "model.pt"  # optional slim torch weights (teachers, ``train --init-from``)
#: Fields every card must have to be registered.
CARD_REQUIRED = ("role", "architecture", "class_names", "input_size")
#: ``click.Context.meta`` key under which the ``lineinspect`` command puts a callable
#: returning the configured registry root, for training commands given no ``--registry``.
ROOT_PROVIDER_KEY = "lineinspect.registry_root"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON so readers see the old or the new file whole."""
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


def read_aliases(path: Path) -> dict[str, int]:
    """Alias → version map in ``path`` (empty when the file is absent)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): int(v) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise RegistryFormatError(f"{path} is not a valid alias map: {exc}") from exc


def read_card(version_dir: Path) -> dict[str, Any]:
    """The ``card.json`` of a version directory."""
    try:
        card: dict[str, Any] = json.loads((version_dir / CARD_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise RegistryFormatError(
            f"{version_dir}/{CARD_FILE} is missing or invalid: {exc}"
        ) from exc
    return card
