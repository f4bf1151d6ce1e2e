"""Settings: sources, priorities and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, load_settings


def test_defaults_and_yaml_and_env_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"registry_root: {tmp_path}\nmax_batch: 4\nport: 9000\n")
    s = load_settings(cfg)
    assert (s.max_batch, s.port, s.registry_root) == (4, 9000, tmp_path)
    monkeypatch.setenv("LINEINSPECT_MAX_BATCH", "16")
    s = load_settings(cfg)
    assert s.max_batch == 16  # env beats the file
    s = load_settings(cfg, max_batch=2)
    assert s.max_batch == 2  # explicit flags beat env


def test_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(None, registry_root=tmp_path, max_batch=0, score_threshold=2)
    msg = str(exc.value)
    assert "max_batch" in msg and "score_threshold" in msg
    with pytest.raises(ConfigError, match="not a directory"):
        load_settings(None, registry_root=tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"unknown_key|Extra inputs"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"registry_root: {tmp_path}\nunknown_key: 1\n")
        load_settings(bad)
    with pytest.raises(ConfigError, match="mapping"):
        lst = tmp_path / "list.yaml"
        lst.write_text("- 1\n- 2\n")
        load_settings(lst)


def test_configuration_doc_is_current() -> None:
    from service.config_doc import settings_reference

    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert doc.read_text() == settings_reference(), (
        "docs/configuration.md is stale: lineinspect config reference > docs/configuration.md"
    )
