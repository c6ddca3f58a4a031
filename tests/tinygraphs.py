"""Tiny ONNX graphs, made with ``onnx.helper``, whose output reveals how they were fed.

Every graph reads a ``[1, 3, H, W]`` float input (static ``H × W``) and computes, per pixel,
``z = w_r·x_0 + w_g·x_1 + w_b·x_2 + b`` (a 1×1 convolution with a different weight per
channel), so on a flat colour the network sees one value ``z`` only if the photo was resized
to the graph's size and normalised with the right scale, mean, std and channel order.
The map is then ``z`` itself (logits: the family must apply a sigmoid), ``sigmoid(z)``
(probabilities already), or ``R·kz + R²`` (``k`` = :data:`RAMP_GAIN`) with ``R`` a constant
horizontal ramp from 1 to 2 — for families that min-max rescale the map, where a plain ``z``
would cancel out: after the rescale, the middle column is ``(0.5·kz + 1.25) / (kz + 3)``.

The expected values are computed here from the publishers' descriptions of each family
(``../shared/models.md``), not from cleancut's own tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: per-channel weights and bias of the 1×1 convolution: different, so channel order shows
WEIGHTS = (0.9, -0.5, 0.3)
BIAS = 0.1
#: how strongly the ramp head's rescaled map follows z
RAMP_GAIN = 4.0


@dataclass(frozen=True)
class Reference:
    """A family as its publisher describes it: ``x = (v·scale − mean) / std`` per channel in
    ``order`` (indices into RGB), and what turns the map into probabilities."""

    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    order: tuple[int, int, int] = (0, 1, 2)
    sigmoid: bool = False
    minmax: bool = False

    def z(self, rgb: tuple[int, int, int]) -> float:
        x = [(rgb[src] * self.scale - self.mean[c]) / self.std[c] for c, src in enumerate(self.order)]
        return sum(w * v for w, v in zip(WEIGHTS, x, strict=True)) + BIAS


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
REFERENCES = {
    "isnet-imgly": Reference(1.0, (128.0, 128.0, 128.0), (256.0, 256.0, 256.0)),
    "isnet": Reference(1 / 255, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), minmax=True),
    "birefnet": Reference(1 / 255, IMAGENET_MEAN, IMAGENET_STD, sigmoid=True),
    "ben2": Reference(1 / 255, IMAGENET_MEAN, IMAGENET_STD, sigmoid=True, minmax=True),
    "u2net": Reference(1 / 255, IMAGENET_MEAN, IMAGENET_STD, minmax=True),
}


def make_graph(
    path: Path,
    *,
    height: int = 1024,
    width: int | None = None,
    head: str = "logits",
    extra_outputs: int = 0,
    final_last: bool = True,
    channels: int = 3,
    input_type: str = "float",
    out_channels: int = 1,
    family: str | None = None,
    fp16: bool = False,
) -> Path:
    """Write one graph to ``path``. ``head``: ``logits`` (the map is ``z``), ``sigmoid``
    (``sigmoid(z)``) or ``ramp`` (``R·z + R²``). ``extra_outputs`` decoy maps of the same
    shape (``z + 5``: far from the real one) come after (``final_last=False``) or before the
    final map. ``family`` is recorded in the metadata as ``cleancut.family``; ``fp16`` stores
    the weights as float16 behind a Cast (as half-precision exports do)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = height if width is None else width
    elem = {"float": TensorProto.FLOAT, "int64": TensorProto.INT64}[input_type]
    inp = helper.make_tensor_value_info("input_image", elem, [1, channels, height, width])
    w = np.array(WEIGHTS[:channels] + (0.0,) * max(0, channels - 3), dtype=np.float32)
    weight = np.tile(w.reshape(1, channels, 1, 1), (out_channels, 1, 1, 1))
    inits = [numpy_helper.from_array(np.full(out_channels, BIAS, np.float32), "b")]
    nodes = []
    if fp16:
        inits.append(numpy_helper.from_array(weight.astype(np.float16), "w16"))
        nodes.append(helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT))
    else:
        inits.append(numpy_helper.from_array(weight, "w"))
    nodes.append(helper.make_node("Conv", ["input_image", "w", "b"], ["z"]))
    final = "z"
    if head == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["z"], ["p"]))
        final = "p"
    elif head == "ramp":
        ramp = np.tile(np.linspace(1.0, 2.0, width, dtype=np.float32), (height, 1))[None, None]
        inits += [
            numpy_helper.from_array(ramp * np.float32(RAMP_GAIN), "kR"),
            numpy_helper.from_array(ramp * ramp, "R2"),
        ]
        nodes += [
            helper.make_node("Mul", ["kR", "z"], ["Rz"]),
            helper.make_node("Add", ["Rz", "R2"], ["map"]),
        ]
        final = "map"
    shape = [1, out_channels, height, width]
    outputs = [helper.make_tensor_value_info(final, TensorProto.FLOAT, shape)]
    for i in range(extra_outputs):
        inits.append(numpy_helper.from_array(np.array(5.0, np.float32), f"five{i}"))
        nodes.append(helper.make_node("Add", ["z", f"five{i}"], [f"side{i}"]))
        side = helper.make_tensor_value_info(f"side{i}", TensorProto.FLOAT, shape)
        outputs = [side, *outputs] if final_last else [*outputs, side]
    graph = helper.make_graph(nodes, "tiny", [inp], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if family is not None:
        helper.set_model_props(model, {"cleancut.family": family})
    onnx.save(model, str(path))
    return path


def expected_value(ref: Reference, rgb: tuple[int, int, int], head: str, column: float = 0.5) -> float:
    """The map's value in 0..1 at ``column`` (0..1 across) for a flat ``rgb`` photo."""
    z = ref.z(rgb)
    if head == "ramp":
        z *= RAMP_GAIN
        r = 1.0 + column
        v, lo, hi = r * z + r * r, z + 1.0, 2 * z + 4.0  # the ramp's value, its min and max

        def act(u: float) -> float:
            return 1.0 / (1.0 + math.exp(-u)) if ref.sigmoid else u

        v, lo, hi = act(v), act(lo), act(hi)
        return (v - lo) / (hi - lo) if ref.minmax else v
    if head == "sigmoid" or ref.sigmoid:
        return 1.0 / (1.0 + math.exp(-z))
    return z


def flat_photo(rgb: tuple[int, int, int], height: int = 300, width: int = 420) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (height, width, 1))
