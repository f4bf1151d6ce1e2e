"""Build small but real ONNX detectors (no torch) that honour docs/contracts.md.

The graph average-pools the image per stride; a cell's objectness logit rises with
its brightness, so bright rectangles on a dark frame are "defects" of class
``hot_class``. Enough to test serving end to end with real ONNX Runtime sessions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.processing import SPEC_METADATA_KEY, ModelSpec


def build_tiny_detector(
    path: Path,
    class_names: tuple[str, ...] = ("scratch", "dent"),
    imgsz: int = 64,
    strides: tuple[int, ...] = (8, 16),
    hot_class: int = 0,
    extra_cost: int = 0,
    bright: float = 0.6,
) -> ModelSpec:
    """Write the ONNX file and return its spec. ``extra_cost`` adds matmuls to slow it;
    a higher ``bright`` lowers every score (above 1 even white cells score under 0.5)."""
    spec = ModelSpec(class_names=class_names, imgsz=imgsz, strides=strides)
    c = len(class_names)
    nodes, inits, level_outs = [], [], []
    inits += [
        numpy_helper.from_array(np.array([0.5], np.float32), "half"),
        # brightness where objectness crosses 0: above the letterbox grey (114/255)
        numpy_helper.from_array(np.array([bright], np.float32), "bright"),
        numpy_helper.from_array(np.array([20.0], np.float32), "gain"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero_f"),
    ]
    cls_bias = np.full((1, c, 1, 1), -6.0, np.float32)
    cls_bias[0, hot_class] = 6.0
    inits.append(numpy_helper.from_array(cls_bias, "cls_bias"))
    inits.append(numpy_helper.from_array(np.array([0, 5 + c, -1], np.int64), "flat_shape"))
    src = "images"
    if extra_cost:
        w = np.eye(imgsz, dtype=np.float32)
        inits.append(numpy_helper.from_array(w, "eye"))
        for i in range(extra_cost):
            nodes.append(helper.make_node("MatMul", [src, "eye"], [f"cost{i}"]))
            src = f"cost{i}"
    for s in strides:
        p = f"l{s}_"
        nodes += [
            helper.make_node(
                "AveragePool", [src], [p + "pool"], kernel_shape=[s, s], strides=[s, s]
            ),
            helper.make_node("ReduceMean", [p + "pool"], [p + "gray"], axes=[1], keepdims=1),
            helper.make_node("Sub", [p + "gray", "bright"], [p + "centred"]),
            helper.make_node("Mul", [p + "centred", "gain"], [p + "obj"]),
            helper.make_node("Mul", [p + "obj", "zero_f"], [p + "zero"]),
            helper.make_node("Add", [p + "zero", "half"], [p + "txy"]),
            helper.make_node("Add", [p + "zero", "cls_bias"], [p + "cls"]),
            helper.make_node(
                "Concat",
                [p + "txy", p + "txy", p + "zero", p + "zero", p + "obj", p + "cls"],
                [p + "cat"],
                axis=1,
            ),
            helper.make_node("Reshape", [p + "cat", "flat_shape"], [p + "flat"]),
            helper.make_node("Transpose", [p + "flat"], [p + "out"], perm=[0, 2, 1]),
        ]
        level_outs.append(p + "out")
    nodes.append(helper.make_node("Concat", level_outs, ["preds"], axis=1))
    graph = helper.make_graph(
        nodes,
        "tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, imgsz, imgsz])],
        [
            helper.make_tensor_value_info(
                "preds", TensorProto.FLOAT, ["N", spec.num_predictions, 5 + c]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {SPEC_METADATA_KEY: spec.to_json()})
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return spec


def write_artefact(directory: Path, role: str = "student", **kwargs: object) -> Path:
    """An export artefact directory (model.onnx + card.json) for ``Registry.register``."""
    spec = build_tiny_detector(directory / "model.onnx", **kwargs)  # type: ignore[arg-type]
    card = {
        "role": role,
        "architecture": "tiny-test",
        "class_names": list(spec.class_names),
        "input_size": spec.imgsz,
        "data_fingerprint": "test",
        "parent": None,
        "metrics": {},
        "params": 0,
        "gflops": 0.0,
    }
    (directory / "card.json").write_text(json.dumps(card))
    return directory
