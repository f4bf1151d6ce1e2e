"""Detector output shapes, parameter budgets and the builder."""

from __future__ import annotations

import pytest
import torch

from models.detectors import build_detector, count_params, get_config
from models.detectors.decode import flatten_outputs

torch.set_num_threads(1)  # small tensors: extra threads only add sync cost on a busy CPU


@pytest.mark.parametrize("arch", ["s-model", "t-model"])
def test_output_shapes(arch: str) -> None:
    m = build_detector(arch, 6).eval()
    with torch.no_grad():
        outs = m(torch.zeros(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [
        (1, 1, 224 // s, 224 // s, 11) for s in get_config(arch).strides
    ]
    spec = m.spec([str(i) for i in range(6)], 224)
    assert flatten_outputs(outs).shape == (1, spec.num_predictions, 11)


def test_param_budgets() -> None:
    s = count_params(build_detector("s-model", 6))
    t = count_params(build_detector("t-model", 6))
    assert s <= 2_500_000
    assert t * 4 < 15 * 2**20  # fp32 ONNX under 15 MiB
    assert t > 2 * s


def test_anchor_based_shapes_and_rebuild() -> None:
    anchors = [
        [[10, 12], [20, 18], [30, 40]],
        [[40, 50], [60, 40], [70, 80]],
        [[100, 90], [120, 150], [200, 180]],
    ]
    m = build_detector("tiny", 3, "anchor_based", anchors).eval()
    with torch.no_grad():
        outs = m(torch.zeros(2, 3, 128, 128))
    assert tuple(outs[0].shape) == (2, 3, 16, 16, 8)
    args = m.build_args()
    m2 = build_detector(args["cfg"], args["num_classes"], args["head"], args["anchors"])
    m2.load_state_dict(m.state_dict())
    assert m2.spec(["a", "b", "c"], 128).anchors == m.spec(["a", "b", "c"], 128).anchors


def test_unknown_arch() -> None:
    with pytest.raises(KeyError):
        build_detector("x-model", 6)
