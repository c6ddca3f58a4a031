"""``cleancut`` on video clips: one clip to a file or a folder of frames, folders of clips
(and of clips and photos) like folders of photos, resume, the flags that reach the frames,
and bad input. Tiny clips (see ``test_video.make_clip``), the real model in its fast mode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av")

from cleancut import EdgeOptions, Remover, Settings  # noqa: E402
from cleancut.video import cut_frames, iter_frames  # noqa: E402
from test_video import H, W, decode_all, make_clip, unknown_codec_clip  # noqa: E402

FAST = ("-m", "isnet_fp16", "--mode", "fast")


@pytest.fixture(autouse=True)
def cli_env(model_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEANCUT_CACHE_DIR", str(model_settings.cache_dir))
    monkeypatch.setenv("CLEANCUT_OFFLINE", "1")
    monkeypatch.setenv("CLEANCUT_NPM", "0")
    monkeypatch.delenv("CLEANCUT_MODEL_URL", raising=False)


def cleancut(*args: object) -> Any:
    from click.testing import CliRunner

    from cleancut.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def errors(res: Any) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("error:")]


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_one_clip_to_webm_and_to_a_folder_of_frames(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    make_clip(src, n=3)
    out = tmp_path / "out.webm"
    res = cleancut(src, "-o", out, *FAST)
    assert res.exit_code == 0, res.stderr
    assert "wrote" in res.stderr and "3 frames" in res.stderr
    frames, (streams, _) = decode_all(out, alpha_decoder=True)
    assert len(frames) == 3 and frames[0].format.name == "yuva420p" and ("audio", "opus") in streams

    res = cleancut(src, "-o", f"{tmp_path / 'frames'}/", *FAST)
    assert res.exit_code == 0, res.stderr
    timing = json.loads((tmp_path / "frames" / "timestamps.json").read_text())
    assert [f["file"] for f in timing["frames"]] == ["000000.png", "000001.png", "000002.png"]
    res = cleancut(src, "-o", tmp_path / "frames", *FAST)  # a rerun: the folder is done
    assert res.exit_code == 0 and "skipped" in res.stderr

    other = tmp_path / "existing"  # a folder of other files takes the clip as NAME.webm
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    res = cleancut(src, "-o", other, *FAST, "--bg-color", "white")
    assert res.exit_code == 0, res.stderr
    assert tree(other) == ["clip.mp4", "notes.txt"]
    assert ("video", "h264") in decode_all(other / "clip.mp4")[1][0]


def test_folder_of_clips_resumes_and_reports_a_bad_clip(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    make_clip(clips / "a.mp4", n=2, audio=False)
    make_clip(clips / "sub" / "b.mov", n=2, audio=False, seed=1)
    (clips / "bad.mkv").write_text("not a clip")
    (clips / ".hidden.mp4").write_text("never an input")
    out = tmp_path / "out"
    res = cleancut(clips, "-o", out, *FAST)
    assert res.exit_code == 1
    assert len(errors(res)) == 1 and "bad.mkv" in errors(res)[0]
    assert "2 written, 0 skipped, 1 failed, of 3" in res.stderr
    assert tree(out) == ["a.webm", "sub", "sub/b.webm"]
    done = digest(out)

    res = cleancut(clips, "-o", out, *FAST)  # resume: finished outputs are skipped
    assert res.exit_code == 1 and len(errors(res)) == 1
    assert res.stderr.count("skipped:") == 2 and "wrote" not in res.stderr
    assert digest(out) == done
    (clips / "bad.mkv").unlink()
    res = cleancut(clips, "-o", out, *FAST)
    assert res.exit_code == 0, res.stderr


def test_output_into_the_input_folder_never_touches_an_input(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "a.mp4", n=2, audio=False)
    make_clip(clips / "a.mov", n=2, audio=False, seed=2)
    before = digest(clips)
    res = cleancut(clips, "-o", clips, *FAST)
    assert res.exit_code == 0, res.stderr
    assert tree(clips) == ["a.cutout.webm", "a.mov", "a.mp4", "a.mp4.cutout.webm"]
    assert {k: v for k, v in digest(clips).items() if k in before} == before
    res = cleancut(clips, "-o", clips, *FAST)  # the .cutout outputs are never taken as inputs
    assert res.exit_code == 0 and "wrote" not in res.stderr and res.stderr.count("skipped:") == 2

    one = clips / "a.cutout.webm"
    res = cleancut(one, "-o", one, "--overwrite", *FAST)  # the output is the input
    assert res.exit_code == 1 and "refusing to overwrite the input" in errors(res)[0]
    res = cleancut(clips / "a.mp4", "-o", clips, "--overwrite", *FAST)
    assert res.exit_code == 0, res.stderr  # into its own folder: a.cutout.webm, replaced
    assert digest(clips)["a.mp4"] == before["a.mp4"]


def test_mixed_folder_cuts_photos_and_clips_in_one_run(tmp_path: Path) -> None:
    from PIL import Image

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    make_clip(mixed / "clip.mp4", n=2, audio=False)
    first = next(iter(iter_frames(mixed / "clip.mp4"))).pixels
    Image.fromarray(first).save(mixed / "photo.jpg")
    out = tmp_path / "out"
    res = cleancut(mixed, "-o", out, *FAST)
    assert res.exit_code == 0, res.stderr
    assert tree(out) == ["clip.webm", "photo.png"]
    with Image.open(out / "photo.png") as im:
        assert im.mode == "RGBA" and im.size == (W, H)
    res = cleancut(mixed, "-o", out, *FAST)
    assert res.exit_code == 0 and "wrote" not in res.stderr

    # files given by name, one photo and one clip: -o is their folder
    both = tmp_path / "both"
    res = cleancut(mixed / "photo.jpg", mixed / "clip.mp4", "-o", both, *FAST)
    assert res.exit_code == 0, res.stderr
    assert tree(both) == ["clip.webm", "photo.png"]


def test_flags_reach_the_frames(tmp_path: Path, remover: Remover) -> None:
    """--no-smooth, --mode and the edge flags give what the library gives for them."""
    src = tmp_path / "clip.mp4"
    make_clip(src, n=3, audio=False)
    frames = tmp_path / "frames"
    res = cleancut(src, "-o", frames, *FAST, "--no-smooth", "--threshold", "128")
    assert res.exit_code == 0, res.stderr
    from PIL import Image

    got = [np.asarray(Image.open(frames / f"{i:06d}.png"))[..., 3] for i in range(3)]
    want = cut_frames(
        iter_frames(src), remover=remover, mode="fast", smooth=False, edges=EdgeOptions(threshold=128)
    )
    for alpha, cut in zip(got, want, strict=True):
        assert set(np.unique(alpha)) <= {0, 255}
        assert np.mean(alpha != cut.pixels[..., 3]) < 0.01


def test_backgrounds_make_an_opaque_mp4_and_crop_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "clip.mp4"
    make_clip(src, n=2, audio=False)
    backdrop = tmp_path / "beach.jpg"
    Image.fromarray(np.full((40, 50, 3), (0, 200, 255), np.uint8)).save(backdrop)
    out = tmp_path / "out"
    (tmp_path / "clip2.mp4").write_bytes(src.read_bytes())
    res = cleancut(src, tmp_path / "clip2.mp4", "-o", out, *FAST, "--background", backdrop)
    assert res.exit_code == 0, res.stderr
    assert tree(out) == ["clip.mp4", "clip2.mp4"]
    decoded, (streams, _) = decode_all(out / "clip.mp4")
    assert ("video", "h264") in streams
    rgb = decoded[0].to_ndarray(format="rgb24").astype(int)
    assert abs(rgb[2, W - 3] - np.array([0, 200, 255])).max() < 30  # a corner shows the backdrop

    res = cleancut(src, "-o", tmp_path / "blur.mp4", *FAST, "--background", "blur")
    assert res.exit_code == 0, res.stderr
    res = cleancut(src, "-o", tmp_path / "crop.webm", *FAST, "--crop")
    assert res.exit_code == 2 and "--crop" in errors(res)[0]
    assert not (tmp_path / "crop.webm").exists()


def test_bad_output_and_unsupported_codec_are_clear_errors_leaving_nothing(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    make_clip(src, n=2, audio=False)
    res = cleancut(src, "-o", tmp_path / "out.gif", *FAST)
    assert res.exit_code == 2 and "cannot write a video to 'out.gif'" in errors(res)[0]
    res = cleancut(src, "-o", "-", *FAST)
    assert res.exit_code == 2 and "stdout" in errors(res)[0]
    odd = tmp_path / "odd.mkv"
    unknown_codec_clip(odd)
    res = cleancut(odd, "-o", tmp_path / "new" / "odd.webm", *FAST)
    assert res.exit_code == 1
    assert "cannot decode" in errors(res)[0] and "odd.mkv" in errors(res)[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "odd.mkv"]


def test_a_killed_runs_temporary_frames_folder_is_cleared_by_the_rerun(tmp_path: Path) -> None:
    """SIGKILL leaves the hidden temporary folder of a folder of frames (never the folder
    itself); the rerun that resumes into that folder removes it, and keeps a live run's."""
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    src = tmp_path / "clip.mp4"
    make_clip(src, n=2, audio=False)
    out = tmp_path / "out"
    stale = out / f".frames.{proc.pid}.0123456789ab.cleancut-tmp"
    live = out / f".other.{os.getpid()}.0123456789ab.cleancut-tmp"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "000000.png").write_bytes(b"partial")
    res = cleancut(src, "-o", out / "frames", *FAST)
    assert res.exit_code == 0, res.stderr
    assert not stale.exists() and live.is_dir()
    assert (out / "frames" / "timestamps.json").is_file()


@pytest.mark.parametrize(
    ("args", "flags"),
    [
        (["-f", "jpeg"], "--format apply"),
        (["-f", "alpha8"], "--format apply"),
        (["--format", "rgba8"], "--format apply"),
        (["-q", "0"], "--quality apply"),
        (["-f", "webp", "--quality", "0.9"], "--format and --quality apply"),
    ],
)
def test_photo_only_flags_are_refused_for_a_run_of_clips(
    tmp_path: Path, args: list[str], flags: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-f jpeg``, ``-f alpha8``, ``-f rgba8``, ``-q 0`` on a clip exited 0 with a VP9
    written: a usage error now, before any model loads, nothing written."""
    src = tmp_path / "clip.mp4"
    make_clip(src, n=2, audio=False)

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Remover, "load", refuse)
    for out in ([], ["-o", tmp_path / "out.webm"]):
        res = cleancut(src, *out, *args)
        assert res.exit_code == 2, res.stderr
        assert errors(res) and f"{flags} to photos only: a clip's container follows -o" in errors(res)[0]
    folder = tmp_path / "clips"
    folder.mkdir()
    make_clip(folder / "a.mov", n=2, audio=False)
    res = cleancut(folder, "-o", tmp_path / "cuts", *args)  # a folder of clips only: the same
    assert res.exit_code == 2 and "photos only" in errors(res)[0], res.stderr
    assert tree(tmp_path) == ["clip.mp4", "clips", "clips/a.mov"]


def test_an_mp4_without_a_colour_is_flattened_on_white(tmp_path: Path) -> None:
    """One rule on every front (the server answered 422 here): no alpha in H.264, so white."""
    src = tmp_path / "clip.mp4"
    make_clip(src, n=2, audio=False)
    res = cleancut(src, "-o", tmp_path / "out.mp4", *FAST, "--no-smooth")
    assert res.exit_code == 0, res.stderr
    decoded, (streams, _) = decode_all(tmp_path / "out.mp4")
    assert ("video", "h264") in streams
    rgb = decoded[0].to_ndarray(format="rgb24").astype(int)
    assert rgb[:3, :3].min() > 200  # the background is white


@pytest.mark.parametrize("quality", [0.8, 1.0, -1, 64, True, "30"])
def test_remove_video_refuses_a_photo_quality(tmp_path: Path, quality: object) -> None:
    """``remove_video(quality=0.8)`` (a photo's 0..1) was taken as CRF 0: refused."""
    from cleancut import InvalidOptionError
    from cleancut.video import remove_video

    src = tmp_path / "clip.mp4"
    make_clip(src, n=2, audio=False)
    with pytest.raises(
        InvalidOptionError, match=r"quality on a clip is the codec's CRF, a whole number 0\.\.63"
    ):
        remove_video(src, tmp_path / "out.webm", quality=quality)  # type: ignore[arg-type]
    assert tree(tmp_path) == ["clip.mp4"]


def test_without_the_video_extra_a_clip_is_one_line_saying_how_to_install(tmp_path: Path) -> None:
    """`cleancut clip.mp4` where PyAV cannot be imported (a sitecustomize puts None in
    sys.modules['av'], what a missing extra looks like): one error line with the pip command,
    exit 1, before any work — no model is even looked for (the cache here is empty and
    offline), no photo beside it is cut, nothing written (issue 24: a ModuleNotFoundError
    traceback)."""
    import os
    import subprocess
    import sys

    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['av'] = None\n")
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "clip.mp4", n=2)
    (src / "photo.jpg").write_bytes((Path(__file__).parents[1] / "examples" / "chelsea.jpg").read_bytes())
    env = {**os.environ, "PYTHONPATH": str(shim), "CLEANCUT_CACHE_DIR": str(tmp_path / "empty-cache")}
    env["CLEANCUT_OFFLINE"] = "1"
    for args in ([src / "clip.mp4"], [src, "-o", tmp_path / "out"]):
        proc = subprocess.run(
            [sys.executable, "-m", "cleancut", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[0].startswith("error: cutting out video clips needs the video extra")
        assert lines[0].endswith("install it with: pip install 'cleancut[video]'")
    assert sorted(p.name for p in src.iterdir()) == ["clip.mp4", "photo.jpg"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "empty-cache").exists()


def test_no_frame_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """The frame bar is drawn on a terminal only, as the photos' bar (issue 24: it was drawn
    into logs and pipes); there the closing line says what was written."""
    src = tmp_path / "clip.mp4"
    make_clip(src, n=3)
    res = cleancut(src, "-o", tmp_path / "out.webm", *FAST)
    assert res.exit_code == 0, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {tmp_path / 'out.webm'} (3 frames"), res.stderr
    assert "\r" not in res.stderr and "frame/s" not in res.stderr
