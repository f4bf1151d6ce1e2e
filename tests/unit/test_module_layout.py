"""The module layout: every module of service/ and models/ imports on its own (no import
cycle hidden by import order), service/ stays torch-free, and only the settings class
reads environment variables."""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "models")
GENERATED = REPO / "service" / "grpc" / "generated"
SETTINGS = REPO / "service" / "config.py"
#: Alembic revision scripts: run by Alembic inside a migration context, never imported.
MIGRATIONS = REPO / "service" / "store" / "migrations"


def _sources() -> list[Path]:
    return sorted(
        p
        for pkg in PACKAGES
        for p in (REPO / pkg).rglob("*.py")
        if GENERATED not in p.parents and MIGRATIONS not in p.parents
    )


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Each module in a fresh interpreter: a cycle shows up as an ImportError, and a service
# module reports whether importing it loaded torch.
_PROBE = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); print('torch' in sys.modules)"
)


def _import_alone(module: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_every_module_imports_alone() -> None:
    modules = [_module(p) for p in _sources()]
    assert "models.registry" in modules and "service.registry" in modules
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(modules, pool.map(_import_alone, modules), strict=True))
    failed = {m: r.stderr.strip().splitlines()[-1:] for m, r in results.items() if r.returncode}
    assert failed == {}
    with_torch = [
        m for m, r in results.items() if m.startswith("service") and r.stdout.strip() != "False"
    ]
    assert with_torch == []


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.alias):
            name = node.name
        if name in ("environ", "getenv", "environb", "getenvb"):
            lines.append(getattr(node, "lineno", 0))
    return lines


def test_only_the_settings_read_environment_variables() -> None:
    readers = {
        str(p.relative_to(REPO)): lines
        for p in _sources()
        if p != SETTINGS and (lines := _reads_environment(ast.parse(p.read_text())))
    }
    assert readers == {}
    assert _reads_environment(ast.parse(SETTINGS.read_text()))  # the check can see a read
