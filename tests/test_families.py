"""Model families through the seam: tiny graphs (tests/tinygraphs.py) whose output reveals
how they were fed, run through the library and the CLI on both backends, and the checks a
graph must pass at load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleancut import Remover
from cleancut.errors import InvalidOptionError, ModelError, ModelNotFoundError, UnknownModelError
from cleancut.models import MODELS, resolve_model
from cleancut.models.families import FAMILIES, get_family
from conftest import model_settings_for
from tinygraphs import REFERENCES, expected_value, flat_photo, make_graph

#: a colour whose normalised channels differ in every family
RGB = (250, 10, 60)
HEAD = {"isnet-imgly": "logits", "isnet": "ramp", "birefnet": "logits", "ben2": "ramp", "u2net": "ramp"}


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    return model_settings_for(tmp_path / "cache", offline=True, npm="0")


def _mask_value(mask: np.ndarray, head: str) -> float:
    h, w = mask.shape
    if head == "ramp":  # the middle column (R = 1.5)
        return float(mask[h // 2, w // 2 - 1 : w // 2 + 1].mean())
    return float(np.median(mask))


def test_every_family_has_a_reference_here() -> None:
    assert set(REFERENCES) == set(FAMILIES)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("family", sorted(REFERENCES))
@pytest.mark.parametrize("size", [(1024, 1024), (192, 256)])
def test_a_flat_colour_gives_the_family_s_value(
    tmp_path: Path, settings, family: str, size: tuple[int, int], backend: str
) -> None:
    """Size, normalisation, channel order and activation all right, or the value is off."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    h, w = size
    head = HEAD[family]
    graph = make_graph(tmp_path / f"{family}.onnx", height=h, width=w, head=head)
    remover = Remover(graph, model_family=family, backend=backend, device="cpu", settings=settings)
    assert remover.recipe.size == size  # read from the graph, not the family's default
    mask = remover.segment(flat_photo(RGB)).mask
    want = 255 * min(1.0, max(0.0, expected_value(REFERENCES[family], RGB, head)))
    got = _mask_value(mask, head)
    # every pixel of a flat photo gets the one value (the ramp: its middle column)
    assert abs(got - want) <= 1.5, (family, got, want)
    # a wrong recipe would not land there: e.g. the channels swapped
    swapped = expected_value(REFERENCES[family], RGB[::-1], head)
    assert abs(255 * min(1.0, max(0.0, swapped)) - want) > 3


def test_the_family_can_come_from_the_graph_s_metadata(tmp_path: Path, settings) -> None:
    graph = make_graph(tmp_path / "m.onnx", head="logits", family="birefnet")
    mask = Remover(graph, backend="onnxruntime", settings=settings).segment(flat_photo(RGB)).mask
    want = 255 * expected_value(REFERENCES["birefnet"], RGB, "logits")
    assert abs(float(np.median(mask)) - want) <= 1.5


def test_a_file_without_a_family_says_how_to_name_one(tmp_path: Path, settings) -> None:
    graph = make_graph(tmp_path / "nofamily.onnx")
    with pytest.raises(ModelError, match="--model-family"):
        Remover(graph, backend="onnxruntime", settings=settings).load()


def test_a_graph_that_ends_in_a_sigmoid_gets_no_second_one(tmp_path: Path, settings) -> None:
    graph = make_graph(tmp_path / "p.onnx", head="sigmoid")
    remover = Remover(graph, model_family="birefnet", backend="onnxruntime", settings=settings)
    assert remover.recipe.activation == "none"
    mask = remover.segment(flat_photo(RGB)).mask
    want = 255 / (1 + np.exp(-REFERENCES["birefnet"].z(RGB)))
    assert abs(float(np.median(mask)) - want) <= 1.5


@pytest.mark.parametrize(("family", "final_last"), [("birefnet", True), ("isnet-imgly", False)])
def test_the_final_map_among_several_is_the_family_s(
    tmp_path: Path, settings, family: str, final_last: bool
) -> None:
    """BiRefNet's final map is its last output, IS-Net's its first; the decoys (z + 5) would
    saturate the mask."""
    graph = make_graph(tmp_path / "multi.onnx", head="sigmoid", extra_outputs=2, final_last=final_last)
    mask = (
        Remover(graph, model_family=family, backend="onnxruntime", settings=settings)
        .segment(flat_photo(RGB))
        .mask
    )
    want = 255 / (1 + np.exp(-REFERENCES[family].z(RGB)))
    assert abs(float(np.median(mask)) - want) <= 1.5


def test_a_constant_map_keeps_its_value_through_the_min_max_rescale(tmp_path: Path, settings) -> None:
    """(y − min) / (max − min) is 0/0 on a flat map: it is left as the network gave it."""
    graph = make_graph(tmp_path / "flatmap.onnx", head="sigmoid")
    remover = Remover(graph, model_family="isnet", backend="onnxruntime", settings=settings)
    assert remover.recipe.rescale == "minmax"
    mask = remover.segment(flat_photo(RGB)).mask
    want = 255 / (1 + np.exp(-REFERENCES["isnet"].z(RGB)))
    assert abs(float(np.median(mask)) - want) <= 1.5


def test_fp16_weights_are_widened_for_the_cpu(tmp_path: Path, settings) -> None:
    graph = make_graph(tmp_path / "half.onnx", head="logits", fp16=True)
    remover = Remover(graph, model_family="birefnet", backend="onnxruntime", settings=settings)
    mask = remover.segment(flat_photo(RGB)).mask
    assert remover.prepared().info.has_fp16
    import onnx

    prepared = onnx.load(str(remover.prepared().path))
    assert all(t.data_type != onnx.TensorProto.FLOAT16 for t in prepared.graph.initializer)
    want = 255 / (1 + np.exp(-REFERENCES["birefnet"].z(RGB)))
    assert abs(float(np.median(mask)) - want) <= 1.5


@pytest.mark.parametrize(
    ("kwargs", "found"),
    [
        ({"channels": 4}, "3 channels, not 4"),
        ({"out_channels": 3}, "no output is a [N, 1, H, W] map"),
        ({"input_type": "int64"}, "float32 or float16"),
    ],
)
def test_a_graph_of_the_wrong_shape_is_a_clear_model_error(
    tmp_path: Path, settings, kwargs: dict[str, object], found: str
) -> None:
    graph = make_graph(tmp_path / "bad.onnx", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ModelError) as err:
        Remover(graph, model_family="birefnet", backend="onnxruntime", settings=settings).load()
    assert found in str(err.value) and "found: input input_image" in str(err.value)


def test_not_an_onnx_file_is_a_model_error(tmp_path: Path, settings) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph at all")
    with pytest.raises(ModelError, match="cannot read"):
        Remover(junk, model_family="birefnet", settings=settings).load()


def test_model_names_paths_and_urls_resolve(tmp_path: Path) -> None:
    assert resolve_model("BiRefNet_General_Lite").name == "birefnet-general-lite"
    assert resolve_model("medium").name == "isnet_fp16"
    with pytest.raises(ModelNotFoundError, match="no such model file"):
        resolve_model(str(tmp_path / "missing.onnx"), family="birefnet")
    with pytest.raises(UnknownModelError, match=r"unknown model 'nope'.*https://"):
        resolve_model("nope")
    with pytest.raises(UnknownModelError, match="unknown model family"):
        resolve_model("https://example.org/x.onnx", family="resnet")
    with pytest.raises(InvalidOptionError, match="64 hexadecimal"):
        resolve_model("https://example.org/x.onnx", sha256="abc")
    with pytest.raises(InvalidOptionError, match="is of the birefnet family"):
        resolve_model("birefnet-general", family="isnet")
    url = resolve_model("https://example.org/m/my%20net.onnx", family="ben2")
    assert url.custom and url.family == "ben2" and url.url and url.name.startswith("my-net-")


def test_every_published_model_is_complete() -> None:
    """URL, size, SHA-256 (or recorded on first use, said so), family and licence."""
    for spec in MODELS.values():
        assert spec.family in FAMILIES and spec.license, spec.name
        assert spec.resource or spec.url or spec.derived_from, spec.name
        if spec.url is not None:
            assert spec.url.startswith("https://"), spec.name
            assert (spec.sha256 is not None and spec.size) or "first use" in spec.checksum_source, spec.name
    assert MODELS["bria-rmbg-2.0"].noncommercial
    assert {
        "birefnet-general",
        "birefnet-general-lite",
        "birefnet-portrait",
        "birefnet-dis",
        "birefnet-hrsod",
        "birefnet-massive",
        "birefnet-hr",
        "birefnet-lite-2k",
        "ben2-base",
        "isnet-general-use",
    } <= set(MODELS)


def test_a_noncommercial_model_needs_the_licence_acknowledged(settings) -> None:
    from cleancut.models.store import fetch_model

    with pytest.raises(InvalidOptionError, match="--accept-noncommercial"):
        fetch_model("bria-rmbg-2.0", settings)
    # acknowledged, it gets as far as the (offline) download
    with pytest.raises(ModelNotFoundError):
        fetch_model("bria-rmbg-2.0", settings.with_(accept_noncommercial=True))


def test_family_names_are_case_and_dash_insensitive() -> None:
    assert get_family("ISNET_IMGLY").name == "isnet-imgly"


def _run_cli(*args: str, env_cache: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "CLEANCUT_CACHE_DIR": str(env_cache), "CLEANCUT_NPM": "0", "CLEANCUT_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "cleancut", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_the_cli_runs_a_file_of_your_own(tmp_path: Path) -> None:
    graph = make_graph(tmp_path / "mine.onnx", height=256, head="logits")
    photo = tmp_path / "flat.png"
    Image.fromarray(flat_photo(RGB)).save(photo)
    out = tmp_path / "out.png"
    proc = _run_cli(
        str(photo), "-o", str(out), "-m", str(graph), "--model-family", "birefnet",
        "--backend", "onnxruntime", "--decontaminate", "none", env_cache=tmp_path / "c",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    alpha = np.asarray(Image.open(out))[:, :, 3]
    want = 255 / (1 + np.exp(-REFERENCES["birefnet"].z(RGB)))
    assert abs(float(np.median(alpha)) - want) <= 1.5
    bad = _run_cli(str(photo), "-o", str(tmp_path / "o2.png"), "-m", str(graph), env_cache=tmp_path / "c")
    assert bad.returncode != 0 and "--model-family" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "o2.png").exists()


def test_models_list_shows_family_input_size_and_licence(tmp_path: Path) -> None:
    proc = _run_cli("models", "list", env_cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert "birefnet-general-lite" in proc.stdout and "CC BY-NC 4.0" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("birefnet-general-lite"))
    assert "birefnet" in line and "1024x1024" in line and "213.6 MiB" in line and "MIT" in line


def test_a_clip_runs_through_a_model_of_your_own(tmp_path: Path, settings) -> None:
    """Video: remove_video with the engine naming a file and its family cuts each frame as
    the library does (the same family's recipe, frame by frame)."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    from cleancut import EngineOptions
    from cleancut.video import iter_frames, remove_video

    src = tmp_path / "flat.mp4"
    with av.open(str(src), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 10)
        for i in range(4):
            f = av.VideoFrame.from_ndarray(flat_photo(RGB, 64, 96), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    graph = make_graph(tmp_path / "clipnet.onnx", height=128, head="logits")
    engine = EngineOptions(model=str(graph), model_family="birefnet", backend="onnxruntime", device="cpu")
    out = tmp_path / "frames"
    result = remove_video(src, out, engine=engine, settings=settings, smooth=False)
    assert result.frames == 4
    remover = Remover(graph, model_family="birefnet", backend="onnxruntime", device="cpu", settings=settings)
    first = next(iter(iter_frames(src)))
    want = remover.segment(first.pixels).mask
    alpha = np.asarray(Image.open(out / "000000.png"))[:, :, 3]
    assert np.abs(alpha.astype(int) - want.astype(int)).max() <= 1
    z = REFERENCES["birefnet"].z(RGB)
    assert abs(float(np.median(alpha)) - 255 / (1 + np.exp(-z))) < 6  # H.264 moves colours a little
