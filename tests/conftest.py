"""Shared fixtures: tiny real ONNX registries and synthetic images."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.registry import Registry
from tests.support.tiny_onnx import write_artefact

# A `lineinspect serve` started by a test runs no training worker unless the test asks
# for one (trainer=auto, service/jobs/embedded.py); subprocesses inherit this.
os.environ.setdefault("LINEINSPECT_TRAINER", "off")


def encode(img: np.ndarray, fmt: str = "JPEG") -> bytes:
    """Encode an RGB uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def defect_image(
    width: int = 200, height: int = 160, box: tuple[int, int, int, int] = (40, 40, 90, 100)
) -> np.ndarray:
    """A dark frame with one bright rectangle (the tiny detector's 'defect')."""
    img = np.full((height, width, 3), 20, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 240
    return img


@pytest.fixture
def tiny_registry(tmp_path: Path) -> Registry:
    """A registry with model 'tiny' v1 (production) and v2 (hot class 1, not aliased)."""
    reg = Registry(tmp_path / "registry")
    reg.root.mkdir()
    reg.register(write_artefact(tmp_path / "a1"), "tiny", alias="production")
    reg.register(write_artefact(tmp_path / "a2", hot_class=1), "tiny")
    return reg


# --- data store -----------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _data_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The whole session (module fixtures and CLI subprocesses included) uses a data store
    root of its own, never the working directory's var/; tests that look into a store
    give theirs explicitly."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINEINSPECT_DATA_ROOT", str(tmp_path_factory.mktemp("data-root")))
        yield


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test: the models in training tests are tiny, and extra
    threads only contend on a busy CPU (torch imported here, so serving tests need none)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
