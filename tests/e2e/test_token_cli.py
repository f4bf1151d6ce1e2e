"""``lineinspect token new`` as a user runs it: the token once, an entry that works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from service.auth.tokens import Scope, TokenVerifier, hash_token
from service.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "service.cli", "token", "new", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_token_new_prints_the_token_and_a_settings_entry(tmp_path: Path) -> None:
    out = run("--scopes", "infer,read", "--name", "plc-l1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    token = lines[1].strip()
    assert token.startswith("li_") and out.stdout.count(token) == 1  # shown once
    yaml_part = out.stdout[out.stdout.index("\ntokens:\n") : out.stdout.index("\n\nor as")]
    config = tmp_path / "settings.yaml"
    config.write_text(yaml_part)
    settings = load_settings(config)
    (entry,) = settings.tokens
    assert entry.name == "plc-l1" and entry.sha256 == hash_token(token)
    assert entry.scopes == (Scope.INFER, Scope.READ)
    assert TokenVerifier(settings.tokens).authorize(f"Bearer {token}", Scope.READ) == entry
    assert "LINEINSPECT_TOKENS='[{" in out.stdout
    assert yaml.safe_load(yaml_part)["tokens"][0]["sha256"] == entry.sha256


def test_token_new_refuses_an_unknown_scope() -> None:
    out = run("--scopes", "infer,root")
    assert out.returncode != 0 and "infer, label, admin, read, metrics" in out.stderr
