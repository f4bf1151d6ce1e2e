"""Registry on disk: references, registration, atomic aliases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.registry import ModelRef, sha256_file
from service.errors import ModelNotFound, RegistryError
from service.registry import Registry, parse_ref
from tests.support.tiny_onnx import write_artefact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steel", ModelRef("steel", alias="production")),
        ("steel@candidate", ModelRef("steel", alias="candidate")),
        ("steel:3", ModelRef("steel", version=3)),
    ],
)
def test_parse_refs(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


@pytest.mark.parametrize("bad", ["", "a:b", "x@y@z", "../etc", "steel:-1", "a b"])
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(ModelNotFound):
        parse_ref(bad)


def test_register_resolve_and_alias(tiny_registry: Registry) -> None:
    reg = tiny_registry
    assert reg.names() == ["tiny"]
    assert reg.versions("tiny") == [1, 2]
    assert reg.resolve("tiny").version == 1
    assert reg.resolve("tiny:2").version == 2
    card = reg.get("tiny", 2).card
    assert card["name"] == "tiny" and card["version"] == 2 and card["created"]
    assert card["onnx_sha256"] == sha256_file(reg.get("tiny", 2).onnx_path)
    assert reg.set_alias("tiny", "production", 2) == 1
    assert reg.resolve("tiny@production").version == 2
    on_disk = json.loads((reg.root / "tiny" / "aliases.json").read_text())
    assert on_disk == {"production": 2}
    assert not list((reg.root / "tiny").glob(".*tmp"))


def test_unknown_refs(tiny_registry: Registry) -> None:
    with pytest.raises(ModelNotFound):
        tiny_registry.resolve("nope")
    with pytest.raises(ModelNotFound):
        tiny_registry.resolve("tiny:9")
    with pytest.raises(ModelNotFound):
        tiny_registry.resolve("tiny@candidate")
    with pytest.raises(ModelNotFound):
        tiny_registry.set_alias("tiny", "production", 9)


def test_register_rejects_incomplete_artefacts(tiny_registry: Registry, tmp_path: Path) -> None:
    art = write_artefact(tmp_path / "bad")
    card = json.loads((art / "card.json").read_text())
    del card["role"]
    (art / "card.json").write_text(json.dumps(card))
    with pytest.raises(RegistryError, match="role"):
        tiny_registry.register(art, "tiny")
    (art / "card.json").write_text(json.dumps({**card, "role": "student", "onnx_sha256": "0" * 64}))
    with pytest.raises(RegistryError, match="sha256"):
        tiny_registry.register(art, "tiny")
    assert tiny_registry.versions("tiny") == [1, 2]  # nothing half-registered


def test_corrupt_alias_file_is_a_registry_error(tiny_registry: Registry) -> None:
    (tiny_registry.root / "tiny" / "aliases.json").write_text("{not json")
    with pytest.raises(RegistryError):
        tiny_registry.aliases("tiny")


def test_alias_write_on_read_only_registry_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import tempfile

    from service.errors import RegistryReadOnly

    reg = Registry(tmp_path / "reg")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "a"), "tiny", alias="production")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(reg.root / "tiny"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(RegistryReadOnly, match="not writable by uid") as info:
        reg.set_alias("tiny", "staging", 1)
    assert info.value.http_status == 503 and info.value.code == "registry_read_only"
    assert "Permission denied" in info.value.message
    with pytest.raises(RegistryReadOnly):
        reg.register(write_artefact(tmp_path / "b"), "tiny")
    assert reg.aliases("tiny") == {"production": 1}
