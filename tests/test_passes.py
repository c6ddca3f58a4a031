"""Quality modes: passes at other input sizes, mirrored passes, and how outputs combine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cleancut import InvalidOptionError, Remover, pipeline
from cleancut.passes import (
    QUALITY_MODES,
    Pass,
    combine,
    normalize_quality_mode,
    pass_input,
    pass_output,
)
from conftest import IMGLY, imgly_preprocess

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    fa, fb = a >= 128, b >= 128
    return float((fa & fb).sum() / max(1, (fa | fb).sum()))


def test_modes_and_their_passes() -> None:
    assert QUALITY_MODES == ("fast", "default", "best")
    assert IMGLY.passes("default") == (Pass(1024),)
    assert IMGLY.passes("BEST ") == (Pass(1024), Pass(1024, flip=True), Pass(768), Pass(768, flip=True))
    assert IMGLY.passes("fast") == (Pass(768),)
    assert all(p.size % 32 == 0 for m in QUALITY_MODES for p in IMGLY.passes(m))
    for bad in ("", "quality", None, 1, "best!"):
        with pytest.raises(InvalidOptionError, match="mode must be one of fast, default, best"):
            normalize_quality_mode(bad)


def test_flipped_pass_round_trips() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    plain = pass_input(pixels, Pass(64), IMGLY)
    flipped = pass_input(pixels, Pass(64, flip=True), IMGLY)
    assert np.array_equal(flipped, plain[..., ::-1])
    assert np.array_equal(pass_output(flipped, Pass(64, flip=True)), plain)


def test_combine_averages_on_the_reference_grid() -> None:
    rng = np.random.default_rng(5)
    a = rng.random((1, 1, 64, 64), dtype=np.float32)
    assert combine([a]) is a
    assert np.allclose(combine([a, a], gain=1.0), a)
    # the average is sharpened in logit space: 0, 0.5 and 1 stay, the rest move away from 0.5
    sharp = combine([a, a], IMGLY.average_gain)
    assert np.allclose(sharp, 1 / (1 + ((1 - a) / a) ** IMGLY.average_gain), atol=1e-5)
    assert np.all((sharp - 0.5) * (a - 0.5) >= 0) and np.all(np.abs(sharp - 0.5) >= np.abs(a - 0.5) - 1e-6)
    edges = np.tile(np.array([0.0, 0.5, 1.0], dtype=np.float32), (3, 1))[None, None]
    assert np.array_equal(combine([edges, edges], IMGLY.average_gain), edges)
    # a smaller output is brought to the larger grid on src = dst·s/S (no half-pixel
    # offset), as pipeline.postprocess maps outputs to the photo: a ramp stays the same ramp
    ramp = np.tile(np.arange(32, dtype=np.float32) / 32, (32, 1))[None, None]
    big = np.tile(np.arange(64, dtype=np.float32) / 64, (64, 1))[None, None]
    out = combine([ramp, big], gain=1.0)
    assert out.shape == (1, 1, 64, 64)
    assert np.allclose(out[0, 0, :, :62], big[0, 0, :, :62], atol=1e-6)
    with pytest.raises(InvalidOptionError):
        combine([])


def test_resized_graph_rescales_every_upsampling_target(remover: Remover) -> None:
    import onnx
    from onnx import numpy_helper

    from cleancut.errors import ModelError
    from cleancut.models.graph import sized_graph, with_input_size

    base = remover.prepared().path
    path = sized_graph(base, 768, remover.settings)
    assert sized_graph(base, 768, remover.settings) == path  # built once, then reused
    model = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 768, 768]
    consts = {o: n for n in model.graph.node for o in n.output if n.op_type == "Constant"}
    concats = {o: n for n in model.graph.node for o in n.output if n.op_type == "Concat"}
    targets = set()
    for node in model.graph.node:
        if node.op_type == "Resize":
            for name in concats[node.input[3]].input:
                if name in consts:
                    targets.update(numpy_helper.to_array(consts[name].attribute[0].t).tolist())
    assert targets == {24, 48, 96, 192, 384, 768}  # 32 … 1024 scaled by 3/4
    with pytest.raises(ModelError, match="multiple of 32"):
        with_input_size(onnx.load(str(base), load_external_data=False), 1000)


def test_quality_modes_cut_out_a_real_photo(remover: Remover) -> None:
    """Each mode runs real passes: the masks agree on the subject but are not the same mask,
    and ``default`` is the single 1024² pass of the reference pipeline."""
    from PIL import Image

    pixels = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    masks = {m: remover.remove(pixels, type="mask", mode=m).mask for m in QUALITY_MODES}
    h, w = pixels.shape[:2]
    y = remover.infer(imgly_preprocess(pixels, 1024, exact=False))
    assert np.array_equal(masks["default"], pipeline.postprocess(y, h, w))
    for m in ("fast", "best"):
        assert masks[m].shape == (h, w)
        assert _iou(masks[m], masks["default"]) > 0.9, m
        assert not np.array_equal(masks[m], masks["default"]), m
    # best is the sharpened mean of its passes, post-processed like one
    outs = [pass_output(remover.session_for(p, None, None).run(pass_input(pixels, p, remover.recipe)), p)
            for p in remover.recipe.passes("best")]  # fmt: skip
    best = combine(outs, remover.recipe.average_gain)
    assert np.array_equal(masks["best"], pipeline.postprocess(best, h, w))
    with pytest.raises(InvalidOptionError, match="mode must be one of"):
        remover.remove(pixels, mode="better")


def test_quantised_model_runs_every_mode(remover: Remover) -> None:
    """The quantised graph gives each Resize one folded ``[N, C, H, W]`` constant instead of a
    Concat: its pixel sizes are rescaled too (``--model small --mode fast`` used to fail every
    photo with "sizes are not a Concat"), and its masks agree with the fp16 model's."""
    import onnx
    from onnx import numpy_helper
    from PIL import Image

    from cleancut.models.graph import sized_graph

    small = Remover("isnet_quint8", settings=remover.settings, backend="onnxruntime").load()
    assert small.recipe.down == "imgly-exact"  # a quantised graph is fed on the exact grid
    model = onnx.load(str(sized_graph(small.prepared().path, 768, small.settings)), load_external_data=False)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    sizes = [inits[n.input[3]].tolist() for n in model.graph.node if n.op_type == "Resize"]
    assert sizes and all(s[2:] == [s[2], s[2]] and s[2] in (24, 48, 96, 192, 384, 768) for s in sizes)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 768, 768]
    pixels = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    for m in ("fast", "best"):
        mask = small.remove(pixels, type="mask", mode=m).mask
        assert _iou(mask, remover.remove(pixels, type="mask", mode=m).mask) > 0.98, m
