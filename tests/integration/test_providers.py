"""Execution providers: a model that does not get a requested provider is visible.

The CPU onnxruntime wheel has no CUDA provider, which is exactly what a GPU image with
a CUDA-major mismatch looks like to the service (ORT falls back to CPU silently).
Requesting CUDA here must give a WARNING, the readiness detail and the
``lineinspect_model_execution_provider`` gauge naming CPU; with ``strict_providers``
start-up must fail with a message naming the missing provider.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.api.app import create_app
from service.config import load_settings
from service.engine import ModelSession
from service.errors import ProviderUnavailable
from service.registry import Registry
from tests.integration.test_rest import metric_samples
from tests.support.http import HTTP
from tests.support.servers import serve_app

CUDA_FIRST = ["CUDAExecutionProvider", "CPUExecutionProvider"]
REPO = Path(__file__).resolve().parents[2]


def test_missing_provider_warns_and_session_reports_cpu(
    tiny_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    version = tiny_registry.resolve("tiny")
    with caplog.at_level(logging.WARNING, logger="service.engine"):
        session = ModelSession(version, CUDA_FIRST)
    assert session.providers == ["CPUExecutionProvider"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "CUDAExecutionProvider" in warnings[0].getMessage()
    assert "tiny:1 runs on CPUExecutionProvider" in warnings[0].getMessage()


def test_requested_provider_present_is_silent(
    tiny_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.engine"):
        ModelSession(tiny_registry.resolve("tiny"), ["CPUExecutionProvider"], strict_providers=True)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_strict_session_refuses_fallback(tiny_registry: Registry) -> None:
    with pytest.raises(ProviderUnavailable, match="CUDAExecutionProvider"):
        ModelSession(tiny_registry.resolve("tiny"), CUDA_FIRST, strict_providers=True)


def test_readiness_and_metric_name_the_provider_each_model_got(tiny_registry: Registry) -> None:
    settings = load_settings(
        None,
        registry_root=tiny_registry.root,
        models=["tiny"],
        warmup_runs=1,
        providers=CUDA_FIRST,
    )
    with serve_app(create_app(settings)) as url:
        body = HTTP.get(url + "/readyz").json()
        assert body["ready"] is True
        assert body["models"] == [
            {
                "model": "tiny",
                "version": 1,
                "provider": "CPUExecutionProvider",
                "missing_providers": ["CUDAExecutionProvider"],
            }
        ]
        samples = metric_samples(url)["lineinspect_model_execution_provider"]
        assert [(s.labels, s.value) for s in samples] == [
            ({"model": "tiny", "version": "1", "provider": "CPUExecutionProvider"}, 1.0)
        ]


def _run_cli(
    args: list[str], registry: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEINSPECT_")}
    env.update(
        LINEINSPECT_STRICT_PROVIDERS="true",
        LINEINSPECT_PROVIDERS='["CUDAExecutionProvider", "CPUExecutionProvider"]',
        LINEINSPECT_WARMUP_RUNS="1",
    )
    cli = [sys.executable, "-m", "service.cli", *args]
    return subprocess.run(
        [*cli, "--registry", str(registry), "--model", "tiny"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_strict_providers_fails_api_start_up(tiny_registry: Registry) -> None:
    proc = _run_cli(["serve", "--port", "0"], tiny_registry.root)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out  # uvicorn's "startup failed"
    assert "ProviderUnavailable" in out and "strict_providers refuses" in out
    assert "CUDAExecutionProvider" in out and "Application startup failed" in out


def test_strict_providers_fails_worker_start_up(tiny_registry: Registry) -> None:
    # No Redis is needed: the models load (and fail) before the worker reads anything.
    proc = _run_cli(["worker", "infer", "--metrics-port", "0"], tiny_registry.root)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "ProviderUnavailable" in out and "strict_providers refuses" in out
