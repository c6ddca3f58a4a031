"""onnxruntime sessions built with ``low_memory``: no CPU arena, no memory pattern, same answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from cleancut.inference.runtime import create_onnxruntime_session


def _graph(path: Path) -> Path:
    """A tiny 1×3×16×16 → 1×1×16×16 network: a 1×1 convolution and a sigmoid."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [0.5, -0.25, 1.0])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Sigmoid", ["c"], ["y"])]
    g = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 16, 16])],
        [w],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_low_memory_turns_off_the_arena_and_the_memory_pattern(tmp_path: Path) -> None:
    path = _graph(tmp_path / "tiny.onnx")
    default = create_onnxruntime_session(path, threads=1)
    low = create_onnxruntime_session(path, threads=1, low_memory=True)
    d, lo = default.session.get_session_options(), low.session.get_session_options()
    assert d.enable_cpu_mem_arena and d.enable_mem_pattern  # the default keeps IS-Net's speed
    assert not lo.enable_cpu_mem_arena and not lo.enable_mem_pattern
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    expected = 1 / (1 + np.exp(-(0.5 * x[:, 0] - 0.25 * x[:, 1] + x[:, 2])))[:, None]
    np.testing.assert_allclose(low.run(x), default.run(x), rtol=0, atol=0)
    np.testing.assert_allclose(low.run(x), expected, rtol=1e-6, atol=1e-6)
