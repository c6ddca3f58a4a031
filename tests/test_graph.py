"""Graph preparation on the real IS-Net fp16 graph: pruning, fp16→fp32, the derived ``isnet``.

Derived models are built in temporary caches that hold a *link* to the verified fp16 model of
the shared test cache (offline, so nothing is ever downloaded here). Inference is limited to
one fp16 and one fp32 pass on a real photo (a few seconds of CPU each).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from cleancut import CancelledError, ModelError, Settings
from cleancut.io.decode import decode
from cleancut.models import MODELS
from cleancut.models.graph import OUTPUT_NAME, ensure_derived, fp16_to_fp32, prune_outputs
from cleancut.models.installed import sha256_file, verify_installed
from cleancut.models.prepare import prepare
from cleancut.models.store import fetch_model
from cleancut.pipeline import postprocess
from conftest import imgly_preprocess as preprocess
from conftest import model_settings_for

FP16 = MODELS["isnet_fp16"]
FP32 = MODELS["isnet"]
F16 = onnx.TensorProto.FLOAT16


def offline_cache(root: Path, model_settings: Settings) -> Settings:
    """An empty offline cache whose models dir links to the verified fp16 model."""
    settings = dataclasses.replace(
        model_settings_for(root, model_base_url="http://127.0.0.1:9/", offline=True), npm=None
    )
    settings.models_dir.mkdir(parents=True)
    src = model_settings.models_dir / FP16.filename
    dst = settings.models_dir / FP16.filename
    try:
        dst.symlink_to(src)
    except OSError:  # no symlinks (Windows without privileges): copy instead
        shutil.copyfile(src, dst)
    return settings


@pytest.fixture(scope="module")
def fp16_model(model_settings: Settings) -> onnx.ModelProto:
    """The published fp16 graph, loaded once; tests that change it work on a copy."""
    return onnx.load(str(model_settings.models_dir / FP16.filename))


@pytest.fixture(scope="module")
def derived(
    tmp_path_factory: pytest.TempPathFactory, model_settings: Settings
) -> Iterator[tuple[Settings, Path]]:
    """``isnet`` built once in an offline temporary cache: (settings, path)."""
    settings = offline_cache(tmp_path_factory.mktemp("derived"), model_settings)
    events: list[tuple[str, int, int]] = []
    path = ensure_derived(FP32, settings, progress=lambda *e: events.append(e))
    assert ("fetch:/models/isnet", 0, 1) in events and events[-1] == ("fetch:/models/isnet", 1, 1)
    yield settings, path


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _fp16_leftovers(model: onnx.ModelProto) -> dict[str, list[str]]:
    g = model.graph
    return {
        "initializers": [t.name for t in g.initializer if t.data_type == F16],
        "casts": [n.name for n in g.node if n.op_type == "Cast" and any(a.i == F16 for a in n.attribute)],
        "constants": [
            n.name
            for n in g.node
            for a in n.attribute
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == F16
        ],
        "value_info": [
            v.name for v in [*g.input, *g.output, *g.value_info] if v.type.tensor_type.elem_type == F16
        ],
    }


# --------------------------------------------------------------------------- prune


def test_prune_outputs_keeps_only_output(fp16_model: onnx.ModelProto) -> None:
    assert len(fp16_model.graph.output) == 12  # output + 11 side/feature maps
    pruned = prune_outputs(_copy(fp16_model))
    g = pruned.graph
    assert [o.name for o in g.output] == [OUTPUT_NAME]
    assert 0 < len(g.node) < len(fp16_model.graph.node)
    assert len(g.initializer) <= len(fp16_model.graph.initializer)
    # every node input is produced by a kept node, an initializer or a graph input
    available = {i.name for i in g.input} | {t.name for t in g.initializer}
    available |= {o for n in g.node for o in n.output}
    assert {i for n in g.node for i in n.input if i} <= available
    onnx.checker.check_model(pruned)
    sess = ort.InferenceSession(pruned.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == [OUTPUT_NAME]
    assert [i.name for i in sess.get_inputs()] == ["input"]


def test_prune_outputs_unknown_name(fp16_model: onnx.ModelProto) -> None:
    with pytest.raises(ModelError, match="no output named"):
        prune_outputs(_copy(fp16_model), keep=["mask"])


def test_prepared_graph_is_cached(derived: tuple[Settings, Path]) -> None:
    """On a CPU the fp16 model runs pruned and widened: the very bytes of the derived fp32
    ``isnet`` (so its masks are those of before), built once, then reused."""
    settings, derived_path = derived
    base = settings.models_dir / FP16.filename
    prepared = prepare(FP16, base, FP16.sha256 or "", settings, gpu=False)
    path = prepared.path
    assert path.parent == settings.cache_dir / "graphs"
    assert [o.name for o in onnx.load(str(path), load_external_data=False).graph.output] == [OUTPUT_NAME]
    assert prepared.sha256 == sha256_file(path) == sha256_file(derived_path)
    assert prepared.info.has_fp16 and len(prepared.info.outputs) > 1 and prepared.info.resizable
    mtime = path.stat().st_mtime_ns
    assert prepare(FP16, base, FP16.sha256 or "", settings, gpu=False).path == path
    assert path.stat().st_mtime_ns == mtime
    # derived: already pruned and fp32, so it is loaded as it is
    assert prepare(FP32, derived_path, sha256_file(derived_path), settings, gpu=False).path == derived_path
    gpu = prepare(FP16, base, FP16.sha256 or "", settings, gpu=True)  # fp16 kept, batch symbolic
    dims = onnx.load(str(gpu.path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and gpu.path != path


# --------------------------------------------------------------------------- fp16 → fp32


def test_fp16_to_fp32_leaves_no_fp16(fp16_model: onnx.ModelProto) -> None:
    before = _fp16_leftovers(fp16_model)
    assert before["initializers"] and before["casts"]  # there was work to do
    widened = fp16_to_fp32(prune_outputs(_copy(fp16_model)))
    assert _fp16_leftovers(widened) == {"initializers": [], "casts": [], "constants": [], "value_info": []}
    assert all(t.data_type != F16 for t in widened.graph.initializer)
    onnx.checker.check_model(widened)


# --------------------------------------------------------------------------- ensure_derived


def test_ensure_derived_builds_once(derived: tuple[Settings, Path]) -> None:
    settings, path = derived
    assert path == settings.models_dir / "isnet.onnx"
    record = json.loads((settings.models_dir / "isnet.onnx.json").read_text())
    assert record["name"] == "isnet"
    assert record["derived_from"] == "isnet_fp16"
    assert record["base_sha256"] == FP16.sha256
    assert record["size"] == path.stat().st_size
    assert record["sha256"] == sha256_file(path)
    assert verify_installed(FP32, path)
    # no temp files (``.NAME.verified`` stamps of checked models are not temporary)
    assert not [p for p in settings.models_dir.iterdir() if p.name.endswith((".tmp", ".part"))]
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    assert _fp16_leftovers(model) == {"initializers": [], "casts": [], "constants": [], "value_info": []}

    mtime = path.stat().st_mtime_ns
    assert ensure_derived(FP32, settings) == path
    assert fetch_model("large", settings) == path  # the alias, through fetch_model
    assert path.stat().st_mtime_ns == mtime  # not rebuilt


@pytest.mark.parametrize("damage", ["flip", "stale-record"])
def test_ensure_derived_rebuilds_bad_file(
    derived: tuple[Settings, Path], model_settings: Settings, tmp_path: Path, damage: str
) -> None:
    _, good = derived
    settings = offline_cache(tmp_path, model_settings)
    path = settings.models_dir / good.name
    sidecar = path.with_name(path.name + ".json")
    shutil.copyfile(good, path)
    shutil.copyfile(good.with_name(good.name + ".json"), sidecar)
    assert verify_installed(FP32, path)
    if damage == "flip":
        with open(path, "r+b") as f:
            f.seek(path.stat().st_size // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x10]))
        assert not verify_installed(FP32, path)
    else:  # built by an older preparation: verifies, but must be rebuilt
        record = json.loads(sidecar.read_text())
        record["prep_version"] = 0
        sidecar.write_text(json.dumps(record))
        assert verify_installed(FP32, path)
    old = path.stat().st_mtime_ns

    assert ensure_derived(FP32, settings) == path
    assert path.stat().st_mtime_ns != old
    assert verify_installed(FP32, path)
    assert sha256_file(path) == sha256_file(good)  # deterministic build
    assert (
        json.loads(sidecar.read_text())["prep_version"]
        == json.loads(good.with_name(good.name + ".json").read_text())["prep_version"]
    )


def test_ensure_derived_cancel(model_settings: Settings, tmp_path: Path) -> None:
    settings = offline_cache(tmp_path, model_settings)
    with pytest.raises(CancelledError):
        fetch_model("isnet", settings, cancel=lambda: True)
    assert sorted(p.name for p in settings.models_dir.iterdir() if not p.name.endswith(".verified")) == [
        FP16.filename
    ]


# --------------------------------------------------------------------------- accuracy


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run([OUTPUT_NAME], {"input": x})
    return np.asarray(y, dtype=np.float32)


def test_fp32_matches_fp16_on_a_real_photo(derived: tuple[Settings, Path], astronaut: Path) -> None:
    settings, fp32_path = derived
    fp16_path = prepare(FP16, settings.models_dir / FP16.filename, FP16.sha256 or "", settings, gpu=True).path
    image = decode(astronaut, max_pixels=settings.max_pixels)
    x = preprocess(image.pixels)
    y16 = _run(fp16_path, x)
    y32 = _run(fp32_path, x)
    assert y16.shape == y32.shape == (1, 1, 1024, 1024)
    assert np.isfinite(y32).all()
    assert y32.min() >= 0.0 and y32.max() <= 1.0
    fg = float((y32 > 0.5).mean())
    assert 0.05 < fg < 0.95, f"degenerate mask: {fg:.1%} foreground"
    diff = np.abs(y16 - y32)
    m16 = postprocess(y16, image.height, image.width).astype(np.int16)
    m32 = postprocess(y32, image.height, image.width).astype(np.int16)
    mask_diff = int(np.abs(m16 - m32).max())
    print(
        f"\nfp16 vs fp32 on {astronaut.name}: max |d| = {diff.max():.3e}, mean |d| = {diff.mean():.3e}, "
        f"max uint8 mask difference = {mask_diff}, foreground = {fg:.1%}"
    )
    assert diff.max() < 1e-2
    assert mask_diff <= 3
