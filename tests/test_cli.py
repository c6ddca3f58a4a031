"""The ``cleancut`` command, in process through click's CliRunner, with the real model.

Every test runs offline against the shared test cache (``CLEANCUT_CACHE_DIR`` and
``CLEANCUT_OFFLINE=1``; the npm fallback is off too), so nothing here can reach the network.
Real inference happens 10 times: six single-file runs (each checks another output option
and all are checked against one another) and two runs of a two-photo folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from cleancut import Settings
from cleancut._version import __version__
from cleancut.cli import cli
from cleancut.models import MODELS
from cleancut.models.store import fetch_model
from conftest import EXAMPLES, png_claiming

ASTRONAUT = EXAMPLES / "astronaut.jpg"  # 512x512
CHELSEA = EXAMPLES / "chelsea.jpg"  # 451x300
COFFEE = EXAMPLES / "coffee.jpg"  # 600x400

FACE = (slice(60, 120), slice(190, 270))
WALL_TOP_RIGHT = (slice(0, 60), slice(460, 512))
BG_PIXEL = (30, 490)

REMOVE_OPTIONS = [
    "--model",
    "--type",
    "--format",
    "--quality",
    "--bg-color",
    "--device",
    "--threads",
    "--overwrite",
    "--quiet",
    "--output",
    "--strict-device",
    "--refine",
    "--decontaminate",
    "--threshold",
    "--feather",
    "--min-island",
    "--min-hole",
    "--background",
    "--fit",
    "--blur",
    "--shadow",
    "--crop",
    "--margin",
    "--square",
    "--padding",
    "--max-size",
    "--preset",
]


@pytest.fixture(scope="module", autouse=True)
def cli_env(model_settings: Settings) -> Iterator[None]:
    """The environment every CLI run sees: the shared cache, offline, no npm."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEANCUT_CACHE_DIR", str(model_settings.cache_dir))
        mp.setenv("CLEANCUT_OFFLINE", "1")
        mp.setenv("CLEANCUT_NPM", "0")
        mp.delenv("CLEANCUT_MODEL_URL", raising=False)
        mp.delenv("CLEANCUT_MAX_PIXELS", raising=False)
        yield


def run(*args: object, input: bytes | None = None) -> Result:
    """``cleancut ARGS...``; stdout and stderr are separate (click >= 8.2)."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def tmp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*tmp"))


def load(data_or_path: bytes | Path) -> Image.Image:
    im = Image.open(io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path)
    im.load()
    return im


def copy_photo(folder: Path, src: Path = ASTRONAUT, name: str = "photo.jpg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, folder / name))


def no_gpu() -> bool:
    import onnxruntime as ort

    from cleancut.inference.runtime import GPU_PROVIDERS

    return not any(p in GPU_PROVIDERS for p in ort.get_available_providers())


# --------------------------------------------------------------------------- single file


@pytest.fixture(scope="module")
def stdin_mask_run() -> Result:
    """``cleancut - --type mask < astronaut.jpg``: also the reference mask for this module."""
    return run("-", "--type", "mask", input=ASTRONAUT.read_bytes())


@pytest.fixture(scope="module")
def mask(stdin_mask_run: Result) -> np.ndarray:
    assert stdin_mask_run.exit_code == 0, stdin_mask_run.output
    return np.asarray(load(stdin_mask_run.stdout_bytes))


def test_stdin_to_stdout_mask(stdin_mask_run: Result, mask: np.ndarray) -> None:
    im = load(stdin_mask_run.stdout_bytes)
    assert im.format == "PNG" and im.mode == "L" and im.size == (512, 512)
    assert stdin_mask_run.stderr == ""  # stdout carries the image, nothing else is said
    assert mask[FACE].mean() > 200
    assert mask[WALL_TOP_RIGHT].mean() < 30


def test_single_file_to_png(tmp_path: Path, mask: np.ndarray) -> None:
    photo = copy_photo(tmp_path / "in")
    out = tmp_path / "out.png"
    result = run(photo, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr
    assert result.stdout == ""
    im = load(out)
    assert im.format == "PNG" and im.mode == "RGBA" and im.size == (512, 512)
    px = np.asarray(im)
    np.testing.assert_array_equal(px[:, :, 3], mask)
    hard = (mask == 0) | (mask == 255)  # soft edge pixels are decontaminated
    np.testing.assert_array_equal(px[:, :, :3][hard], np.asarray(load(ASTRONAUT).convert("RGB"))[hard])
    assert tmp_files(tmp_path) == []


def test_single_file_without_output_goes_beside(tmp_path: Path, mask: np.ndarray) -> None:
    photo = copy_photo(tmp_path)
    result = run(photo)
    assert result.exit_code == 0, result.output
    beside = tmp_path / "photo.cutout.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.cutout.png", "photo.jpg"]
    im = load(beside)
    assert im.mode == "RGBA" and im.size == (512, 512)
    np.testing.assert_array_equal(np.asarray(im)[:, :, 3], mask)
    assert photo.read_bytes() == ASTRONAUT.read_bytes()


def test_output_folder_with_trailing_slash_and_webp(tmp_path: Path, mask: np.ndarray) -> None:
    photo = copy_photo(tmp_path / "in")
    outdir = tmp_path / "cutouts"
    result = run(photo, "-o", f"{outdir}{os.sep}", "--format", "webp")
    assert result.exit_code == 0, result.output
    assert [p.name for p in outdir.iterdir()] == ["photo.webp"]
    im = load(outdir / "photo.webp")
    assert im.format == "WEBP" and im.mode == "RGBA" and im.size == (512, 512)
    alpha = np.asarray(im)[:, :, 3].astype(int)
    assert np.abs(alpha - mask.astype(int)).mean() < 2
    assert tmp_files(tmp_path) == []


def test_jpeg_on_bg_color(tmp_path: Path) -> None:
    photo = copy_photo(tmp_path / "in")
    out = tmp_path / "green.jpg"
    result = run(photo, "-o", out, "--format", "jpeg", "--bg-color", "#00ff00", "--quality", "0.9")
    assert result.exit_code == 0, result.output
    im = load(out)
    assert im.format == "JPEG" and im.mode == "RGB" and im.size == (512, 512)
    px = np.asarray(im).astype(int)
    assert np.abs(px[BG_PIXEL] - np.array([0, 255, 0])).max() <= 8, px[BG_PIXEL]
    face = np.asarray(load(ASTRONAUT).convert("RGB")).astype(int)[FACE]
    assert np.abs(px[FACE] - face).mean() < 6  # the subject is not tinted


def test_file_to_stdout_background(tmp_path: Path, mask: np.ndarray) -> None:
    photo = copy_photo(tmp_path)
    result = run(photo, "-o", "-", "--type", "background")
    assert result.exit_code == 0, result.output
    im = load(result.stdout_bytes)
    assert im.format == "PNG" and im.mode == "RGBA" and im.size == (512, 512)
    np.testing.assert_array_equal(np.asarray(im)[:, :, 3], 255 - mask)
    assert "wrote" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]  # nothing written


# --------------------------------------------------------------------------- overwrite rules


def test_never_overwrites_an_input(tmp_path: Path) -> None:
    src = tmp_path / "x.png"
    load(CHELSEA).save(src)
    before = src.read_bytes()
    for extra in ([], ["--overwrite"]):
        for target in (src, tmp_path / "." / "x.png"):
            result = run(src, "-o", target, *extra)
            assert result.exit_code == 1, result.output
            lines = error_lines(result)
            assert len(lines) == 1 and "refusing to overwrite the input" in lines[0], result.stderr
            assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_existing_output_is_skipped(tmp_path: Path) -> None:
    photo = copy_photo(tmp_path)
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    result = run(photo, "-o", out)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.stderr and "--overwrite" in result.stderr
    assert out.read_bytes() == b"keep me"
    assert tmp_files(tmp_path) == []


# --------------------------------------------------------------------------- folders


@pytest.fixture(scope="module")
def folder_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A folder with two photos (one in a subfolder), a bad file, a hidden photo, an earlier
    cut-out and the output folder itself inside it; run, rerun, rerun with --overwrite."""
    root = tmp_path_factory.mktemp("folder")
    inp = root / "in"
    copy_photo(inp, CHELSEA, "cat.jpg")
    copy_photo(inp / "sub", COFFEE, "coffee.jpg")
    (inp / "x.jpg").write_text("this is a text file with a .jpg name\n")
    copy_photo(inp, ASTRONAUT, ".hidden.jpg")
    load(ASTRONAUT).save(inp / "old.cutout.png")
    out = inp / "masks"
    args = [inp, "-o", out, "--type", "mask"]

    def snapshot() -> dict[str, tuple[bytes, int]]:
        return {
            p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*"))
            if p.is_file()
        }

    first = run(*args)
    snap1 = snapshot()
    for p in out.rglob("*.png"):  # an old mtime: any rewrite would show
        os.utime(p, (1_000_000_000, 1_000_000_000))
    second = run(*args)
    snap2 = snapshot()
    third = run(*args, "--overwrite")
    snap3 = snapshot()
    return {
        "root": root,
        "in": inp,
        "out": out,
        "runs": [first, second, third],
        "snaps": [snap1, snap2, snap3],
    }


def test_folder_writes_gray_masks_with_relative_names(folder_runs: dict) -> None:  # type: ignore[type-arg]
    out: Path = folder_runs["out"]
    first: Result = folder_runs["runs"][0]
    assert sorted(folder_runs["snaps"][0]) == ["cat.png", "sub/coffee.png"]
    for rel, src in (("cat.png", CHELSEA), ("sub/coffee.png", COFFEE)):
        im = load(out / rel)
        assert im.format == "PNG" and im.mode == "L"
        assert im.size == load(src).size
        coverage = (np.asarray(im) >= 128).mean()
        assert 0.2 < coverage < 0.95, (rel, coverage)
    assert "written" in first.stderr


def test_folder_bad_file_reported_once(folder_runs: dict) -> None:  # type: ignore[type-arg]
    first: Result = folder_runs["runs"][0]
    assert first.exit_code == 1
    lines = error_lines(first)
    assert len(lines) == 1, first.stderr
    assert "x.jpg" in lines[0]
    assert "2 written, 0 skipped, 1 failed" in first.stderr
    assert "of 3" in first.stderr
    assert "Traceback" not in first.output


def test_folder_ignores_hidden_cutouts_and_its_output(folder_runs: dict) -> None:  # type: ignore[type-arg]
    for result in folder_runs["runs"]:
        assert ".hidden" not in result.stderr
        assert "old.cutout" not in result.stderr
        assert "of 3" in result.stderr  # the outputs inside the input folder are not inputs
    for snap in folder_runs["snaps"]:
        assert sorted(snap) == ["cat.png", "sub/coffee.png"]


def test_folder_rerun_skips_existing_outputs(folder_runs: dict) -> None:  # type: ignore[type-arg]
    second: Result = folder_runs["runs"][1]
    snap1, snap2 = folder_runs["snaps"][:2]
    assert second.exit_code == 1  # x.jpg still fails
    assert "0 written, 2 skipped, 1 failed" in second.stderr
    for rel, (data, mtime) in snap2.items():
        assert mtime == 1_000_000_000 * 10**9, rel  # not rewritten
        assert data == snap1[rel][0]


def test_folder_overwrite_rewrites(folder_runs: dict) -> None:  # type: ignore[type-arg]
    third: Result = folder_runs["runs"][2]
    snap1, snap3 = folder_runs["snaps"][0], folder_runs["snaps"][2]
    assert third.exit_code == 1
    assert "2 written, 0 skipped, 1 failed" in third.stderr
    for rel, (data, mtime) in snap3.items():
        assert mtime > 1_000_000_000 * 10**9, rel
        assert data == snap1[rel][0]  # same model, same input: the same mask


def test_folder_leaves_no_temp_files(folder_runs: dict) -> None:  # type: ignore[type-arg]
    assert tmp_files(folder_runs["root"]) == []
    # the input folder holds what it held before, plus the output folder
    inp: Path = folder_runs["in"]
    assert sorted(p.name for p in inp.iterdir()) == [
        ".hidden.jpg",
        "cat.jpg",
        "masks",
        "old.cutout.png",
        "sub",
        "x.jpg",
    ]


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "empty", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "no images found" in result.stderr
    assert not (tmp_path / "out").exists()


def test_several_inputs_cannot_go_to_stdout(tmp_path: Path) -> None:
    a, b = copy_photo(tmp_path, name="a.jpg"), copy_photo(tmp_path, name="b.jpg")
    result = run(a, b, "-o", "-")
    assert result.exit_code == 2  # a usage error
    assert len(error_lines(result)) == 1 and "stdout" in result.stderr
    assert result.stdout_bytes == b""


def test_folder_into_a_file_name_is_refused(tmp_path: Path) -> None:
    """``cleancut one/ -o newfile.png``: a folder in and a missing path named like an image
    out is refused before any model work (it created a folder named newfile.png)."""
    copy_photo(tmp_path / "one")
    result = run(tmp_path / "one", "-o", tmp_path / "newfile.png")
    assert result.exit_code == 2, result.stderr
    assert error_lines(result) == [
        f"error: -o {tmp_path / 'newfile.png'} is named like a .png file, but a folder input writes "
        f"into a folder: give a folder (to create a folder named newfile.png, write -o "
        f"{tmp_path / 'newfile.png'}/)"
    ]
    assert not (tmp_path / "newfile.png").exists()


def test_unwritable_output_folder_is_one_line_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder run into a folder that takes no files: one error line naming it and what to
    do, exit 1, and no model loaded or inferred (issue 24: every image was inferred, then
    each write failed)."""
    from cleancut.remover import Remover
    from test_codecs import read_only_folder

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Remover, "load", no_model)
    copy_photo(tmp_path / "in", name="a.jpg")
    copy_photo(tmp_path / "in", name="b.jpg")
    out = tmp_path / "out"
    out.mkdir()
    with read_only_folder(out) as how:
        result = run(tmp_path / "in", "-o", out)
        assert result.exit_code == 1, (how, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {out}: no permission"), lines
        assert "choose another -o folder" in lines[0]
        assert list(out.iterdir()) == []


def test_ctrl_c_in_a_folder_run_reports_every_output_and_the_summary(
    model_settings: Settings, tmp_path: Path
) -> None:
    """SIGINT to a real `cleancut in/ -o out/` once its first file is written: the images in
    flight are finished and each reported, then the summary line and `cancelled`, exit 130;
    every file on disk was reported and none appears after (issue 24: outputs kept landing
    unreported and the run ended with `cancelled` alone)."""
    import re
    import signal
    import time

    for i in range(10):
        copy_photo(tmp_path / "in", CHELSEA, f"p{i}.jpg")
    out = tmp_path / "out"
    env = {**os.environ, "CLEANCUT_CACHE_DIR": str(model_settings.cache_dir), "CLEANCUT_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cleancut", str(tmp_path / "in"), "-o", str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith("written:") and sum(x.startswith("written:") for x in lines) == 1:
                proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=300) == 130, lines
    finally:
        if proc.poll() is None:
            proc.kill()
    reported = {Path(line.split(" -> ", 1)[1]).name for line in lines if line.startswith("written:")}
    summary = re.fullmatch(r"(\d+) written, 0 skipped, 0 failed, of 10 in [0-9.]+ s", lines[-2])
    assert summary is not None and lines[-1] == "cancelled", lines
    assert int(summary[1]) == len(reported) < 10, lines
    time.sleep(0.5)  # nothing lands after the process is gone
    assert sorted(p.name for p in out.iterdir()) == sorted(reported), lines
    assert tmp_files(out) == []


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_files() -> dict[str, bytes]:
    jpeg = ASTRONAUT.read_bytes()
    return {
        "empty": b"",
        "text": b"hello, I am not a picture\n" * 10,
        "truncated": jpeg[: len(jpeg) // 2],
        "huge": png_claiming(30000, 30000),
    }


@pytest.mark.parametrize(
    ("kind", "words"),
    [("empty", "empty"), ("text", "not an image"), ("truncated", "truncated"), ("huge", "pixels")],
)
@pytest.mark.parametrize("with_output", [False, True], ids=["beside", "dash-o"])
def test_bad_input_one_clear_error(
    bad_files: dict[str, bytes], tmp_path: Path, kind: str, words: str, with_output: bool
) -> None:
    src = tmp_path / "x.jpg"
    src.write_bytes(bad_files[kind])
    out = tmp_path / "out.png"
    result = run(src, *(["-o", out] if with_output else []))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and str(src) in lines[0] and words in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg"]  # no output, no temp file


def test_missing_input(tmp_path: Path) -> None:
    result = run(tmp_path / "nope.jpg")
    assert result.exit_code == 1
    assert error_lines(result) == [f"error: no such file: {tmp_path / 'nope.jpg'}"]


def test_verbose_flag_before_input(tmp_path: Path) -> None:
    """`cleancut -v INPUT` runs the default command (the group's -v is not passed on to it)."""
    result = run("-v", tmp_path / "nope.jpg")
    assert result.exit_code == 1, result.output  # not 2: no usage error
    assert "no such file" in result.stderr
    result = run("-vv", "--help")
    assert result.exit_code == 0
    assert "models" in result.stdout


def test_bad_bg_color_is_an_error_line(tmp_path: Path) -> None:
    photo = copy_photo(tmp_path)
    result = run(photo, "--bg-color", "not-a-colour")
    assert result.exit_code == 2
    assert len(error_lines(result)) == 1 and "colour" in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


# --------------------------------------------------------------------------- models


def test_models_list(model_settings: Settings) -> None:
    result = run("models", "list")
    assert result.exit_code == 0, result.output
    text = result.stdout
    rows = {
        line.split()[0]: line
        for line in text.splitlines()[1:]
        if line and not line.startswith(("cache", "your own"))
    }
    assert set(rows) == set(MODELS)
    assert "(large)" in rows["isnet"] and "isnet-imgly" in rows["isnet"]
    # the derived model's size is its built file's, not "?" (issue 24 item 19)
    assert "168.0 MiB" in rows["isnet"] and "yes" in rows["isnet"]
    fp16 = rows["isnet_fp16"]
    assert "(medium)" in fp16 and "[default]" in fp16 and "yes" in fp16
    assert "(small)" in rows["isnet_quint8"] and "42.3 MiB" in rows["isnet_quint8"]
    assert "CC BY-NC 4.0" in rows["bria-rmbg-2.0"] and "birefnet" in rows["bria-rmbg-2.0"]
    assert "2560x1440" in rows["birefnet-lite-2k"]
    assert f"cache: {model_settings.models_dir}" in text


def test_models_list_json(model_settings: Settings) -> None:
    result = run("models", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == set(MODELS)
    assert rows["isnet"]["aliases"] == ["large"]
    assert rows["isnet_fp16"]["aliases"] == ["medium"]
    assert rows["isnet_quint8"]["aliases"] == ["small"]
    assert rows["isnet_fp16"]["default"] is True and rows["isnet_fp16"]["installed"] is True
    assert rows["isnet_fp16"]["path"] == str(model_settings.models_dir / "isnet_fp16.onnx")
    assert rows["isnet_fp16"]["size"] == 88_188_479
    lite = rows["birefnet-general-lite"]
    assert lite["family"] == "birefnet" and lite["license"] == "MIT" and lite["input"] == "1024x1024"
    assert lite["url"].startswith("https://") and len(lite["sha256"]) == 64 and len(lite["md5"]) == 32


def test_models_verify_checks_the_derived_model_too(model_settings: Settings) -> None:
    """``isnet`` is derived locally: verify checks it against its record (issue 24 item 19)."""
    fetch_model("isnet", model_settings)
    result = run("models", "verify", "isnet", "isnet_fp16")
    assert result.exit_code == 0, result.output
    assert [ln.split() for ln in result.stdout.splitlines()] == [["isnet", "ok"], ["isnet_fp16", "ok"]]


def test_models_path(model_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = str(model_settings.models_dir / "isnet_fp16.onnx")
    for name in ("isnet_fp16", "medium"):
        result = run("models", "path", name)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == expected
    assert Path(expected).is_file()
    monkeypatch.setenv("CLEANCUT_CACHE_DIR", str(tmp_path))
    result = run("models", "path", "isnet_fp16")
    assert result.exit_code == 1
    assert result.stdout.strip() == str(tmp_path / "models" / "isnet_fp16.onnx")
    assert "cleancut models fetch isnet_fp16" in result.stderr


def test_models_verify_ok() -> None:
    result = run("models", "verify", "isnet_fp16")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["isnet_fp16", "ok"]
    result = run("models", "verify")  # every model: the others are ok or not fetched
    assert result.exit_code == 0, result.output
    assert "CORRUPT" not in result.stdout


def test_models_verify_detects_corruption(
    model_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = model_settings.models_dir / "isnet_fp16.onnx"
    copy = tmp_path / "models" / "isnet_fp16.onnx"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    with open(copy, "r+b") as f:
        f.seek(40_000_000)
        byte = f.read(1)
        f.seek(40_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv("CLEANCUT_CACHE_DIR", str(tmp_path))
    result = run("models", "verify")
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("isnet_fp16"))
    assert "CORRUPT" in line and "cleancut models fetch --force isnet_fp16" in line
    assert "isnet_quint8" in result.stdout and "not fetched" in result.stdout
    assert "Traceback" not in result.output


def test_models_fetch_offline_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CLEANCUT_CACHE_DIR", str(cache))
    result = run("models", "fetch", "isnet_fp16")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "offline" in lines[0]
    assert "cleancut models fetch isnet_fp16" in lines[0] and "CLEANCUT_OFFLINE" in lines[0]
    assert "Traceback" not in result.output
    assert not (cache / "models" / "isnet_fp16.onnx").exists()


def test_unknown_model_is_a_usage_error(tmp_path: Path) -> None:
    result = run(copy_photo(tmp_path), "--model", "huge")
    assert result.exit_code == 2
    assert "huge" in result.stderr


# --------------------------------------------------------------------------- info, help, device


def test_info_json(model_settings: Settings) -> None:
    import onnxruntime

    result = run("info", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["onnxruntime"] == onnxruntime.__version__
    assert info["available_providers"] == onnxruntime.get_available_providers()
    assert "CPUExecutionProvider" in info["available_providers"]
    assert info["cache_dir"] == str(model_settings.cache_dir)
    assert info["offline"] is True
    assert info["models"]["isnet_fp16"] == "verified"
    session = info["session"]
    assert session["model"] == "isnet_fp16"
    assert session["backend"] in ("onnxruntime", "openvino")
    assert session["backend_reason"]
    if no_gpu():
        assert session["provider"] == "CPUExecutionProvider" or session["provider"].startswith("OpenVINO CPU")
    assert session["threads"] >= 1


def test_info_text() -> None:
    result = run("info")
    assert result.exit_code == 0, result.output
    assert "onnxruntime:" in result.stdout and "session:" in result.stdout
    assert "isnet_fp16" in result.stdout and "verified" in result.stdout
    # every row of the models and session tables: its key, at least two spaces, its value
    # (issue 24: "backend_reasonself-check: …", a key wider than its column)
    report = json.loads(run("info", "--json").stdout)
    lines = result.stdout.splitlines()
    for section in ("models", "session"):
        rows = lines[lines.index(f"{section}:") + 1 :][: len(report[section])]
        for line, (key, value) in zip(rows, report[section].items(), strict=True):
            assert line.startswith(f"  {key}  ") and line.endswith(str(value)), line
            assert line[2 + len(key) :].strip() == str(value), line


def test_help() -> None:
    for args in (["--help"], ["-h"]):
        result = run(*args)
        assert result.exit_code == 0
        for word in ("remove", "models", "info", "cleancut photo.jpg"):
            assert word in result.stdout
    result = run("remove", "--help")
    assert result.exit_code == 0
    for option in REMOVE_OPTIONS:
        assert option in result.stdout, option
    for choice in ("foreground", "background", "mask", "png", "webp", "jpeg", "isnet_quint8", "small"):
        assert choice in result.stdout, choice
    result = run("--version")
    assert result.exit_code == 0 and "cleancut" in result.stdout


def _python_m(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m cleancut ARGS`` in a child process, from a folder that is not the repository
    (so the installed package is what runs, as in a user's venv)."""
    return subprocess.run(
        [sys.executable, "-m", "cleancut", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


def test_python_dash_m_help_version_and_usage_name(tmp_path: Path) -> None:
    """`python -m cleancut` is the same command as the script, named `cleancut` (not
    `python -m cleancut` or `__main__.py`) in its usage line."""
    result = _python_m("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: cleancut [OPTIONS] COMMAND [ARGS]...")
    for word in ("remove", "models", "info", "serve"):
        assert word in result.stdout
    result = _python_m("remove", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: cleancut remove [OPTIONS] INPUT...")
    result = _python_m("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"cleancut, version {__version__}"
    result = _python_m("--no-such-flag", cwd=tmp_path)
    assert result.returncode == 2 and "Usage: cleancut" in result.stderr


def test_python_dash_m_cuts_a_photo_and_keeps_exit_codes(tmp_path: Path, mask: np.ndarray) -> None:
    """A real cut through `python -m cleancut` (the module, not the console script) gives the
    in-process run's mask; a missing input is exit 1 with one error line."""
    out = tmp_path / "out.png"
    result = _python_m(str(ASTRONAUT), "-o", str(out), "--type", "mask", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as im:
        got = np.asarray(im.convert("L"))
    assert got.shape == mask.shape
    assert np.abs(got.astype(int) - mask.astype(int)).max() <= 1
    result = _python_m(str(tmp_path / "nope.jpg"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: no such file: {tmp_path / 'nope.jpg'}"


def test_verbose_says_what_runs_and_very_verbose_each_stage(tmp_path: Path, model_settings: Settings) -> None:
    """-v: the model, the backend and why, the device and provider, threads, the cache; -vv:
    also one line per file with its stage timings. Only cleancut's records: other libraries'
    debug output (PIL's PNG chunk dumps) stays out. A child process, as a user runs it (in
    process, pytest owns the logging)."""
    result = _python_m("-v", str(ASTRONAUT), "-o", str(tmp_path / "a.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = [line for line in result.stderr.splitlines() if line.startswith("INFO: ")]
    assert info[0].startswith("INFO: model isnet_fp16 (family ") and ".onnx" in info[0]
    assert info[1].startswith("INFO: backend ") and ":" in info[1][len("INFO: backend ") :]
    assert info[2].startswith("INFO: device auto: ") and " threads" in info[2]
    assert info[3] == f"INFO: cache {model_settings.cache_dir} (offline)"
    assert "DEBUG" not in result.stderr

    result = _python_m("-vv", str(CHELSEA), "-o", str(tmp_path / "c.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    debug = [line for line in result.stderr.splitlines() if line.startswith("DEBUG: ")]
    timing = [line for line in debug if line.startswith(f"DEBUG: {CHELSEA}: ")]
    assert len(timing) == 1, result.stderr
    for stage in ("decode", "preprocess", "inference", "postprocess", "encode", "write"):
        assert f"{stage} " in timing[0] and " ms" in timing[0], stage
    assert timing[0].endswith(" ms") and "; written in " in timing[0]
    assert "STREAM" not in result.stderr and "PIL" not in result.stderr
    assert sum(line.startswith("INFO: ") for line in result.stderr.splitlines()) >= 4


@pytest.mark.skipif(not no_gpu(), reason="this machine has a GPU provider")
def test_strict_gpu_fails_on_cpu_only_machine(tmp_path: Path) -> None:
    photo = copy_photo(tmp_path)
    result = run(photo, "--device", "gpu", "--strict-device")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "strict" in lines[0] and "gpu" in lines[0].lower()
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


# --------------------------------------------------------------------------- edges and framing
# Three more inferences: the e-commerce preset to JPEG, an image background with a crop, and
# a refined, thresholded mask.


def test_ecommerce_preset_to_jpeg(tmp_path: Path) -> None:
    out = tmp_path / "product.jpg"
    result = run(CHELSEA, "-o", out, "--preset", "ecommerce", "--max-size", "300")
    assert result.exit_code == 0, result.output
    im = load(out)
    assert im.format == "JPEG" and im.mode == "RGB" and im.size == (300, 300)
    px = np.asarray(im).astype(int)
    for corner in (px[:4, :4], px[:4, -4:], px[-4:, :4], px[-4:, -4:]):
        assert corner.min() >= 245  # white canvas (JPEG rounding aside)


def test_image_background_with_a_crop(tmp_path: Path, mask: np.ndarray) -> None:
    from cleancut.framing import subject_box

    out = tmp_path / "on-coffee.png"
    result = run(ASTRONAUT, "-o", out, "--background", COFFEE, "--fit", "fill", "--margin", "0")
    assert result.exit_code == 0, result.output
    im = load(out)
    left, top, right, bottom = subject_box(mask) or (0, 0, 0, 0)
    assert im.size == (right - left, bottom - top)  # --margin implies --crop
    px = np.asarray(im)
    assert (px[:, :, 3] == 255).all()  # an opaque background
    face = np.asarray(load(ASTRONAUT).convert("RGB"))[FACE]
    fy, fx = FACE
    inside = px[fy.start - top : fy.stop - top, fx.start - left : fx.stop - left, :3]
    assert np.abs(inside.astype(int) - face.astype(int)).mean() < 3  # the subject is the photo


def test_refined_thresholded_mask(tmp_path: Path, mask: np.ndarray) -> None:
    out = tmp_path / "mask.png"
    result = run(ASTRONAUT, "-o", out, "--type", "mask", "--refine", "guided", "--threshold", "128")
    assert result.exit_code == 0, result.output
    hard = np.asarray(load(out))
    assert set(np.unique(hard).tolist()) <= {0, 255}  # thresholded
    assert ((hard > 0) == (mask >= 128)).mean() > 0.98  # the same subject, guided


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--background", "no-such-file.jpg"], "no such image file"),
        (["--padding", "0.6"], "padding must be a number in [0, 0.5)"),
        (["--type", "mask", "--background", "white"], "a background or shadow needs a cut-out"),
        (["--bg-color", "red", "--background", "blue"], "--bg-color and --background"),
        (["--type", "background", "--shadow"], "a shadow needs a subject"),
        (["--min-island", "2"], "--min-island"),
        (["--format", "webp", "--quality", "nan"], "--quality"),  # FloatRange lets NaN through
        (["--format", "webp", "--quality", "-inf"], "--quality"),
    ],
)
def test_bad_framing_options_are_usage_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    photo = copy_photo(tmp_path)
    result = run(photo, *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]  # nothing written


# ------------------------------------------------------------- inputs are never outputs (issue 12)


def test_output_into_the_input_folder_never_writes_an_input(tmp_path: Path) -> None:
    """``d/a.jpg`` and ``d/a.png``, ``cleancut d -o d --overwrite``: the cut-outs are
    ``a.cutout.png`` and ``a.png.cutout.png``, no input is touched, an output that would be
    another input (``e/a.jpg`` → ``d/a.png``) is one error line, and reruns (into d, or
    beside) find exactly the two inputs again."""
    d, e = tmp_path / "d", tmp_path / "e"
    copy_photo(d, ASTRONAUT, "a.jpg")
    load(CHELSEA).save(d / "a.png")
    copy_photo(e, COFFEE, "a.jpg")
    before = {p: p.read_bytes() for p in (d / "a.jpg", d / "a.png", e / "a.jpg")}
    first = run(e / "a.jpg", d, "-o", d, "--overwrite")
    assert first.exit_code == 1, first.output
    (line,) = error_lines(first)
    assert str(e / "a.jpg") in line and f"{d / 'a.png'}: it is an input of this batch" in line
    assert "2 written, 0 skipped, 1 failed, of 3" in first.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in d.iterdir()) == ["a.cutout.png", "a.jpg", "a.png", "a.png.cutout.png"]
    assert load(d / "a.cutout.png").size == load(ASTRONAUT).size
    assert load(d / "a.png.cutout.png").size == load(CHELSEA).size
    for args in ([d, "-o", d], [d]):
        again = run(*args)
        assert again.exit_code == 0, again.output
        assert "0 written, 2 skipped, 0 failed, of 2" in again.stderr
    assert sorted(p.name for p in d.iterdir()) == ["a.cutout.png", "a.jpg", "a.png", "a.png.cutout.png"]
    assert {p: p.read_bytes() for p in before} == before


def test_symlink_loop_and_odd_file_names_keep_one_line_each(tmp_path: Path) -> None:
    """A symlink loop is one ``error:`` line and the files after it are still cut out; a
    newline or bytes that are not UTF-8 in a file name are escaped, so that every status
    line stays one line."""
    d, out = tmp_path / "d", tmp_path / "out"
    d.mkdir()
    (d / "a-loop.jpg").symlink_to("a-loop.jpg")
    small = load(CHELSEA).resize((120, 80))
    small.save(d / "b\nline.png")
    small.save(os.fsdecode(os.fsencode(d) + b"/c\xff.png"))
    result = run(d, "-o", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("error: ") and "a-loop.jpg" in lines[0] and "symbolic links" in lines[0]
    assert lines[1] == f"written: {d}/b\\nline.png -> {out}/b\\nline.png"
    assert lines[2] == f"written: {d}/c\\xff.png -> {out}/c\\xff.png"
    assert lines[3].startswith("2 written, 0 skipped, 1 failed, of 3")
    assert sorted(os.fsencode(p.name) for p in out.iterdir()) == [b"b\nline.png", b"c\xff.png"]


def test_one_batch_loop_shows_every_engine_s_rows(capsys: pytest.CaptureFixture[str]) -> None:
    """The local batch and Ray both go through cli.progress.BatchProgress: one error line
    per failure (on one line, the input named once), a line per input where there is no
    bar, the counts; nothing per input for a single input, only errors when quiet."""
    from cleancut.cli.progress import BatchProgress, Row

    rows = [
        Row("written", "a.jpg", "out/a.png"),
        Row("skipped", "b.jpg", "out/b.png"),
        Row("failed", "c\nd.jpg", None, "c\nd.jpg: not an image"),
        Row("failed", "e.jpg", None, "truncated"),
    ]
    counts = BatchProgress(total=len(rows), quiet=False).run(rows)
    assert (counts.written, counts.skipped, counts.failed, counts.total) == (1, 1, 2, 4)
    assert counts.summary(of=5).startswith("1 written, 1 skipped, 2 failed, of 5 in ")
    assert capsys.readouterr().err.splitlines() == [
        "written: a.jpg -> out/a.png",
        "skipped: b.jpg -> out/b.png",
        "error: c\\nd.jpg: not an image",
        "error: e.jpg: truncated",
    ]
    BatchProgress(total=1, quiet=False, single=True).run([Row("written", "a.jpg", "a.png")])
    BatchProgress(total=2, quiet=True).run(rows[:2])
    assert capsys.readouterr().err == ""


# ------------------------------------------------- issue 24: contracts between options (items 6-9, 11)


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal must come before the model loads: loading it fails the test."""
    from cleancut.remover import Remover

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Remover, "load", refuse)
    monkeypatch.setattr(Remover, "_get_session", refuse)


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("j.png", ["-f", "jpeg"], "j.png names a png file but the format asked for is jpeg: name it j.jpg"),
        ("r.png", ["-f", "rgba8"], "r.png names a png file but the format asked for is rgba8: name it"),
        ("w.jpg", ["-f", "png"], "w.jpg names a jpeg file but the format asked for is png: name it w.png"),
        ("x.webm", [], "cannot write x.webm: .webm is a clip container, not a photo format"),
        ("out.gif", [], "cannot write out.gif: .gif is not an output format"),
        ("out.bmp", ["-f", "png"], "cannot write out.bmp: .bmp is not an output format"),
        ("out", [], "out has no extension, so it names no format"),
    ],
)
def test_output_name_and_format_never_contradict(
    tmp_path: Path, no_model: None, name: str, args: list[str], fragment: str
) -> None:
    """``-o j.png -f jpeg`` wrote JPEG bytes under .png, ``-o out.gif`` a PNG: a name and
    a format that disagree (or a name that is no format) is a usage error, nothing written."""
    photo = copy_photo(tmp_path / "in")
    result = run(photo, "-o", tmp_path / name, *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / name).exists() and tmp_files(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "alpha8", "--background", "white"],
        ["--format", "alpha8", "--bg-color", "white"],
        ["-o", "{tmp}/a.alpha", "--background", "blur"],  # alpha8 from the extension
    ],
)
def test_alpha8_on_an_opaque_background_is_a_usage_error(
    tmp_path: Path, no_model: None, args: list[str]
) -> None:
    """It was accepted and wrote all 255 (the server answered 422)."""
    photo = copy_photo(tmp_path / "in")
    result = run(photo, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.exit_code == 2, result.output
    assert "format alpha8 is the alpha channel alone" in result.stderr, result.stderr
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["photo.jpg"]
    assert not (tmp_path / "a.alpha").exists()


def test_an_extensionless_output_with_a_format_is_written_in_it(tmp_path: Path) -> None:
    """``-o out -f jpeg``: the name claims no format, so the one asked for is written."""
    photo = copy_photo(tmp_path / "in")
    result = run(photo, "-o", tmp_path / "out", "-f", "jpeg", "--quiet")
    assert result.exit_code == 0, result.output
    assert load(tmp_path / "out").format == "JPEG"


def test_threads_above_the_usable_cpus_are_capped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``--threads 42`` reran the backend self-check for every new count (62 s, 1.9 GB):
    the count is capped to the CPUs this process may use, and a warning says so."""
    from cleancut.inference import runtime
    from cleancut.remover import Remover

    seen: list[int | None] = []

    def record(self: Remover, **_k: object) -> Remover:
        seen.append(self.threads)
        raise SystemExit(0)  # stop before any model work: the engine is what is checked

    monkeypatch.setattr(Remover, "load", record)
    caplog.set_level("WARNING", logger="cleancut")
    result = run(copy_photo(tmp_path), "-o", tmp_path / "o.png", "--threads", "4242")
    assert result.exit_code == 0, result.output
    assert seen == [runtime.usable_cpus()]
    assert any("threads 4242 is more than the" in r.getMessage() for r in caplog.records)
    assert "capped" in run("remove", "--help").stdout


@pytest.mark.parametrize("args", [[""], ["  "], ["", "{photo}"], ["{photo}", "", "-o", "out/"]])
def test_an_empty_input_is_a_usage_error_not_the_current_folder(
    tmp_path: Path, no_model: None, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """``cleancut ""`` was ``Path("")``, the current folder: it cut out every photo under it."""
    photo = copy_photo(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = run(*(a.replace("{photo}", str(photo)) for a in args))
    assert result.exit_code == 2, result.output
    empty = next(a for a in args if not a.strip())
    want = f"error: an input is an empty string ({empty!r}); give a file, a folder (. for this one), or - "
    want += "for stdin"
    assert error_lines(result) == [want]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


def test_a_url_input_says_it_is_a_url(tmp_path: Path, no_model: None) -> None:
    """It said ``no such file: https:/example.com/photo.jpg`` (slashes folded, no word of URLs)."""
    result = run("https://example.com/photo.jpg", "-o", tmp_path / "x.png")
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert line.startswith("error: 'https://example.com/photo.jpg' is a URL, and this run reads local files")
    assert "--engine ray" in line and "url=" in line and "https:/example" not in line
    assert list(tmp_path.iterdir()) == []
