"""The model registry format, torch-free: imported by the serving side (service/registry.py)
and the training side (models/weights.py) alike, so both read the same layout.

Layout (docs/contracts.md): ``<root>/<name>/<version>/model.onnx`` + ``card.json``
(+ optional torch weights ``model.pt``), and ``<root>/<name>/aliases.json`` mapping
alias → version, replaced atomically so readers never see half a file.
"""

from models.registry.errors import MalformedReference, RegistryFormatError
from models.registry.files import (
    ALIASES_FILE,
    BUNDLED_ROOT,
    CARD_FILE,
    CARD_REQUIRED,
    ONNX_FILE,
    ROOT_PROVIDER_KEY,
    WEIGHTS_FILE,
    read_aliases,
    read_card,
    sha256_file,
    write_json_atomic,
)
from models.registry.refs import DEFAULT_ALIAS, NAME_RE, ModelRef

__all__ = [
    "ALIASES_FILE",
    "BUNDLED_ROOT",
    "CARD_FILE",
    "CARD_REQUIRED",
    "DEFAULT_ALIAS",
    "NAME_RE",
    "ONNX_FILE",
    "ROOT_PROVIDER_KEY",
    "WEIGHTS_FILE",
    "MalformedReference",
    "ModelRef",
    "RegistryFormatError",
    "read_aliases",
    "read_card",
    "sha256_file",
    "write_json_atomic",
]
