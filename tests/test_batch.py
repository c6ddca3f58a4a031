"""Batch planning (pure: paths only, no model) and one real pipelined run.

``plan_jobs`` is checked rule by rule against its docstring on real folders under
``tmp_path``; ``run_jobs`` runs the real fp16 model over three photos mixed with a bad file,
an output that exists, an input that would be overwritten, and a stdout job (3 inferences).
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cleancut import CancelledError, InvalidOptionError, Remover
from cleancut.batch import IMAGE_EXTENSIONS, Job, JobResult, OutputOptions, plan_jobs, run_jobs
from cleancut.io.formats import OutputFormat
from conftest import EXAMPLES

ASTRONAUT = EXAMPLES / "astronaut.jpg"
CHELSEA = EXAMPLES / "chelsea.jpg"
COFFEE = EXAMPLES / "coffee.jpg"


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def pairs(jobs: list[Job]) -> list[tuple[Path | None, Path | None]]:
    return [(j.source, j.output) for j in jobs]


# --------------------------------------------------------------------------- one input


def test_one_file_to_named_output(tmp_path: Path) -> None:
    src = touch(tmp_path / "photo.jpg")
    jobs, fmt = plan_jobs([src], tmp_path / "out.png")
    assert fmt == "png"
    assert jobs == [Job(src, tmp_path / "out.png", str(src))]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("out.png", "png"),
        ("out.webp", "webp"),
        ("out.jpg", "jpeg"),
        ("out.JPEG", "jpeg"),
        ("out.rgba", "rgba8"),
        ("out.alpha", "alpha8"),
    ],
)
def test_format_from_output_extension(tmp_path: Path, name: str, fmt: str) -> None:
    src = touch(tmp_path / "photo.jpg")
    jobs, got = plan_jobs([str(src)], str(tmp_path / name))
    assert got == fmt
    assert jobs[0].output == tmp_path / name


@pytest.mark.parametrize(
    ("name", "fmt", "fragment"),
    [
        ("out.png", "webp", "out.png names a png file but the format asked for is webp: name it out.webp"),
        ("out.bin", None, "cannot write out.bin: .bin is not an output format"),
        ("out.bin", "png", "cannot write out.bin: .bin is not an output format"),
        ("out", None, "out has no extension, so it names no format"),
    ],
)
def test_a_format_never_goes_under_another_name(
    tmp_path: Path, name: str, fmt: OutputFormat | None, fragment: str
) -> None:
    """Issue 24: ``-o out.png -f webp`` wrote WebP under .png, ``out.bin``/``out`` a PNG."""
    src = touch(tmp_path / "photo.jpg")
    with pytest.raises(InvalidOptionError, match=re.escape(fragment)):
        plan_jobs([src], tmp_path / name, fmt)


def test_a_format_names_an_extensionless_output(tmp_path: Path) -> None:
    src = touch(tmp_path / "photo.jpg")
    jobs, fmt = plan_jobs([src], tmp_path / "out", "webp")
    assert fmt == "webp" and jobs[0].output == tmp_path / "out"
    jobs, fmt = plan_jobs([src], tmp_path / "out.jpeg", "jpeg")  # agreeing is fine
    assert fmt == "jpeg"


def test_one_file_into_folder_with_trailing_slash(tmp_path: Path) -> None:
    src = touch(tmp_path / "photo.jpg")
    out = tmp_path / "new"
    jobs, fmt = plan_jobs([src], f"{out}/")
    assert fmt == "png"
    assert jobs[0].output == out / "photo.png"
    assert not out.exists()  # planning creates nothing
    jobs, fmt = plan_jobs([src], f"{out}/", "webp")
    assert fmt == "webp" and jobs[0].output == out / "photo.webp"


def test_one_file_into_existing_folder(tmp_path: Path) -> None:
    src = touch(tmp_path / "photo.jpg")
    out = tmp_path / "cutouts"
    out.mkdir()
    jobs, _ = plan_jobs([src], out)
    assert jobs[0].output == out / "photo.png"


def test_one_file_without_output_goes_beside(tmp_path: Path) -> None:
    src = touch(tmp_path / "photo.jpg")
    jobs, fmt = plan_jobs([src], None)
    assert fmt == "png"
    assert jobs == [Job(src, tmp_path / "photo.cutout.png", str(src))]
    jobs, fmt = plan_jobs([src], None, "jpeg")
    assert fmt == "jpeg" and jobs[0].output == tmp_path / "photo.cutout.jpg"
    jobs, fmt = plan_jobs([src], None, "webp")
    assert jobs[0].output == tmp_path / "photo.cutout.webp"


def test_one_file_to_stdout(tmp_path: Path) -> None:
    src = touch(tmp_path / "photo.jpg")
    jobs, fmt = plan_jobs([src], "-")
    assert fmt == "png"
    assert jobs == [Job(src, None, str(src))]
    _, fmt = plan_jobs([src], "-", "webp")
    assert fmt == "webp"


def test_missing_single_input_is_planned_and_fails_later(tmp_path: Path) -> None:
    jobs, _ = plan_jobs([tmp_path / "missing.jpg"], None)
    assert jobs[0].output == tmp_path / "missing.cutout.png"


# --------------------------------------------------------------------------- stdin


def test_stdin_to_stdout() -> None:
    assert plan_jobs(["-"], None) == ([Job(None, None, "<stdin>")], "png")
    assert plan_jobs(["-"], "-") == ([Job(None, None, "<stdin>")], "png")
    assert plan_jobs(["-"], None, "webp") == ([Job(None, None, "<stdin>")], "webp")


def test_stdin_to_file(tmp_path: Path) -> None:
    jobs, fmt = plan_jobs(["-"], tmp_path / "out.webp")
    assert fmt == "webp"
    assert jobs == [Job(None, tmp_path / "out.webp", "<stdin>")]


def test_stdin_into_folder(tmp_path: Path) -> None:
    jobs, _ = plan_jobs(["-"], f"{tmp_path}/")
    assert jobs == [Job(None, tmp_path / "stdin.png", "<stdin>")]
    jobs, _ = plan_jobs(["-"], f"{tmp_path}/sub/", "jpeg")
    assert jobs[0].output == tmp_path / "sub" / "stdin.jpg"


# --------------------------------------------------------------------------- errors


def test_no_input_is_an_error() -> None:
    with pytest.raises(InvalidOptionError, match="no input"):
        plan_jobs([], None)


def test_stdin_cannot_be_combined(tmp_path: Path) -> None:
    src = touch(tmp_path / "a.jpg")
    with pytest.raises(InvalidOptionError, match="stdin"):
        plan_jobs(["-", str(src)], tmp_path / "out")
    with pytest.raises(InvalidOptionError, match="stdin"):
        plan_jobs(["-", "-"], None)


def test_several_inputs_cannot_go_to_stdout(tmp_path: Path) -> None:
    a, b = touch(tmp_path / "a.jpg"), touch(tmp_path / "b.jpg")
    with pytest.raises(InvalidOptionError, match="stdout"):
        plan_jobs([a, b], "-")
    folder = tmp_path / "dir"
    touch(folder / "c.jpg")
    with pytest.raises(InvalidOptionError, match="stdout"):
        plan_jobs([folder], "-")


def test_several_inputs_need_a_folder_output(tmp_path: Path) -> None:
    a, b = touch(tmp_path / "a.jpg"), touch(tmp_path / "b.jpg")
    existing = touch(tmp_path / "out.png")
    with pytest.raises(InvalidOptionError, match="must be a folder"):
        plan_jobs([a, b], existing)
    folder = tmp_path / "dir"
    touch(folder / "c.jpg")
    with pytest.raises(InvalidOptionError, match="must be a folder"):
        plan_jobs([folder], existing)


# --------------------------------------------------------------------------- folders


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for rel in ["b.jpg", "a.png", "c.JPG", "d.webp", "sub/e.jpeg", "sub/deeper/f.tif"]:
        touch(root / rel)
    # never inputs: hidden files and folders, our own outputs, other file types
    for rel in [
        ".hidden.jpg",
        ".cache/g.jpg",
        "a.cutout.png",
        "sub/e.cutout.webp",
        "notes.txt",
        "raw.cr2",
        "sub/readme",
    ]:
        touch(root / rel)
    return root


# os.walk order: a folder's files (sorted) before its subfolders (sorted)
EXPECTED_INPUTS = ["a.png", "b.jpg", "c.JPG", "d.webp", "sub/e.jpeg", "sub/deeper/f.tif"]


def test_folder_keeps_relative_names(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs, fmt = plan_jobs([tree], out)
    assert fmt == "png"
    assert [j.source for j in jobs] == [tree / r for r in EXPECTED_INPUTS]
    assert [j.output for j in jobs] == [out / Path(r).with_suffix(".png") for r in EXPECTED_INPUTS]
    assert [j.name for j in jobs] == [str(tree / r) for r in EXPECTED_INPUTS]
    assert not out.exists()


def test_folder_output_extension_follows_format(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs, fmt = plan_jobs([tree], out, "jpeg")
    assert fmt == "jpeg"
    assert [j.output for j in jobs] == [out / Path(r).with_suffix(".jpg") for r in EXPECTED_INPUTS]
    # a missing -o named like a file is refused for a folder input (issue 24: it created a
    # folder named out.webp); a trailing / asks for that folder, an existing one is used
    for name in ("out.webp", "out.PNG", "clip.webm"):
        with pytest.raises(
            InvalidOptionError, match=rf"-o .*{name} is named like a .* file, but a folder input"
        ):
            plan_jobs([tree], tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(InvalidOptionError, match="several inputs writes into a folder"):
        plan_jobs([tree / "a.png", tree / "b.jpg"], str(tmp_path / "out.webp"))
    jobs, fmt = plan_jobs([tree], f"{tmp_path / 'out.webp'}/")
    assert fmt == "png"
    assert jobs[0].output == tmp_path / "out.webp" / "a.png"
    (tmp_path / "made.png").mkdir()
    assert plan_jobs([tree], tmp_path / "made.png")[0][0].output == tmp_path / "made.png" / "a.png"


def test_folder_without_output_goes_beside(tree: Path) -> None:
    jobs, _ = plan_jobs([tree], None, "webp")
    assert [j.output for j in jobs] == [
        (tree / r).with_name(Path(r).stem + ".cutout.webp") for r in EXPECTED_INPUTS
    ]


def test_output_folder_inside_input_is_not_scanned(tree: Path) -> None:
    out = tree / "cutouts"
    touch(out / "a.png")  # a previous run's output
    touch(out / "sub" / "e.png")
    jobs, _ = plan_jobs([tree], out)
    assert [j.source for j in jobs] == [tree / r for r in EXPECTED_INPUTS]
    # the same folder seen through another spelling is excluded as well
    jobs, _ = plan_jobs([tree], tree / "sub" / ".." / "cutouts")
    assert [j.source for j in jobs] == [tree / r for r in EXPECTED_INPUTS]


def test_every_image_extension_is_scanned(tmp_path: Path) -> None:
    root = tmp_path / "all"
    for ext in sorted(IMAGE_EXTENSIONS):
        touch(root / f"img{ext}")
    jobs, _ = plan_jobs([root], tmp_path / "out")
    assert len(jobs) == len(IMAGE_EXTENSIONS)
    assert len({j.output for j in jobs}) == len(jobs)


def test_empty_folder_plans_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    touch(tmp_path / "empty" / "notes.txt")
    assert plan_jobs([tmp_path / "empty"], tmp_path / "out") == ([], "png")


def test_several_files_into_folder(tmp_path: Path) -> None:
    a, b = touch(tmp_path / "x" / "a.jpg"), touch(tmp_path / "y" / "b.webp")
    jobs, _ = plan_jobs([str(a), str(b)], tmp_path / "out")
    assert pairs(jobs) == [(a, tmp_path / "out" / "a.png"), (b, tmp_path / "out" / "b.png")]
    jobs, _ = plan_jobs([a, b], None)
    assert pairs(jobs) == [(a, a.with_name("a.cutout.png")), (b, b.with_name("b.cutout.png"))]


def test_folder_and_file_together(tree: Path, tmp_path: Path) -> None:
    extra = touch(tmp_path / "extra.jpg")
    jobs, _ = plan_jobs([tree, extra], tmp_path / "out")
    assert jobs[-1] == Job(extra, tmp_path / "out" / "extra.png", str(extra))
    assert len(jobs) == len(EXPECTED_INPUTS) + 1


# --------------------------------------------------------------------------- collisions


def test_same_stem_in_one_folder_gets_distinct_outputs(tmp_path: Path) -> None:
    root = tmp_path / "in"
    jpg, png = touch(root / "photo.jpg"), touch(root / "photo.png")
    out = tmp_path / "out"
    jobs, _ = plan_jobs([root], out)
    assert pairs(jobs) == [(jpg, out / "photo.png"), (png, out / "photo.png.png")]
    jobs, _ = plan_jobs([root], None)
    outputs = [j.output for j in jobs]
    assert outputs == [root / "photo.cutout.png", root / "photo.png.cutout.png"]
    # neither output would be taken as an input on a rerun
    for o in outputs:
        assert o is not None
        touch(o)
    assert [j.source for j in plan_jobs([root], None)[0]] == [jpg, png]


def test_same_name_from_several_folders_gets_distinct_outputs(tmp_path: Path) -> None:
    srcs = [touch(tmp_path / d / "photo.jpg") for d in ("a", "b", "c")]
    jobs, _ = plan_jobs(srcs, tmp_path / "out")
    outputs = [j.output for j in jobs]
    assert len(set(outputs)) == 3
    assert outputs[0] == tmp_path / "out" / "photo.png"
    assert all(o is not None and o.parent == tmp_path / "out" and o.suffix == ".png" for o in outputs)


# --------------------------------------------------------------------------- run_jobs (real model)


@pytest.fixture(scope="module")
def mixed_run(
    tmp_path_factory: pytest.TempPathFactory, remover: Remover
) -> tuple[Path, list[Job], list[JobResult]]:
    root = tmp_path_factory.mktemp("batch")
    inp, out = root / "in", root / "out"
    inp.mkdir()
    for p in (ASTRONAUT, CHELSEA, COFFEE):
        shutil.copy(p, inp / p.name)
    touch(inp / "bad.jpg", b"plain text, not a JPEG\n")
    touch(out / "done.png", b"existing output")
    shutil.copy(COFFEE, inp / "done.jpg")
    same = inp / "same.png"
    Image.open(CHELSEA).save(same)
    jobs = [
        Job(inp / "chelsea.jpg", out / "chelsea.png", "chelsea.jpg"),  # written
        Job(inp / "done.jpg", out / "done.png", "done.jpg"),  # skipped: output exists
        Job(inp / "bad.jpg", out / "bad.png", "bad.jpg"),  # failed: not an image
        Job(inp / "astronaut.jpg", None, "astronaut.jpg"),  # written, to "stdout" (data)
        Job(same, same, "same.png"),  # failed: would overwrite its input
        Job(inp / "coffee.jpg", out / "sub" / "coffee.png", "coffee.jpg"),  # written
    ]
    results = list(run_jobs(jobs, remover, OutputOptions(type="foreground", format="png")))
    return root, jobs, results


def test_results_in_input_order(mixed_run: tuple[Path, list[Job], list[JobResult]]) -> None:
    _, jobs, results = mixed_run
    assert [r.job for r in results] == jobs
    assert [r.status for r in results] == ["written", "skipped", "failed", "written", "failed", "written"]


def test_written_outputs_are_valid(mixed_run: tuple[Path, list[Job], list[JobResult]]) -> None:
    _, _, results = mixed_run
    for r in results:
        if r.status != "written":
            continue
        assert r.error is None
        assert r.job.source is not None
        with Image.open(r.job.source) as src:
            size = src.size
        if r.job.output is None:
            assert r.data is not None
            im = Image.open(io.BytesIO(r.data))
        else:
            assert r.data is None
            im = Image.open(r.job.output)
        with im:
            assert im.format == "PNG" and im.mode == "RGBA" and im.size == size
            alpha = np.asarray(im)[:, :, 3]
        assert 0.1 < (alpha >= 128).mean() < 0.95  # a real cut-out, not blank or opaque


def test_failed_and_skipped_results_explain(mixed_run: tuple[Path, list[Job], list[JobResult]]) -> None:
    root, _, results = mixed_run
    skipped, bad, same = results[1], results[2], results[4]
    assert skipped.error is not None and "exists" in skipped.error
    assert (root / "out" / "done.png").read_bytes() == b"existing output"
    assert bad.error is not None and "bad.jpg" in bad.error and "not an image" in bad.error
    assert not (root / "out" / "bad.png").exists()
    assert same.error is not None and "refusing to overwrite the input" in same.error
    with Image.open(root / "in" / "same.png") as im:
        assert im.size == (451, 300) and im.mode == "RGB"


def test_timings_present(mixed_run: tuple[Path, list[Job], list[JobResult]]) -> None:
    _, _, results = mixed_run
    assert sum(r.status == "written" for r in results) >= 3
    for r in results:
        if r.status == "written":
            assert r.seconds > 0
            for key in ("decode", "preprocess", "wait", "inference", "postprocess", "encode"):
                assert key in r.timings and r.timings[key] >= 0, (key, r.timings)
            assert r.timings["inference"] > 0


def test_no_temp_files_left(mixed_run: tuple[Path, list[Job], list[JobResult]]) -> None:
    root, _, _ = mixed_run
    assert list(root.rglob(".*tmp")) == []
    assert sorted(
        p.relative_to(root / "out").as_posix() for p in (root / "out").rglob("*") if p.is_file()
    ) == ["chelsea.png", "done.png", "sub/coffee.png"]


def test_cancel_stops_before_any_work(tmp_path: Path, remover: Remover) -> None:
    import threading

    event = threading.Event()
    event.set()
    jobs = [Job(CHELSEA, tmp_path / "a.png", "a"), Job(COFFEE, tmp_path / "b.png", "b")]
    with pytest.raises(CancelledError):
        list(run_jobs(jobs, remover, OutputOptions(), cancel=event))
    assert list(tmp_path.iterdir()) == []


def test_only_prechecked_jobs_need_no_model(tmp_path: Path, remover: Remover) -> None:
    """Skips and refusals are answered without decoding or inference."""
    existing = touch(tmp_path / "a.png", b"old")
    src = touch(tmp_path / "x.jpg", b"not even an image")
    same = touch(tmp_path / "b.png", b"an input")
    jobs = [Job(src, existing, "x.jpg"), Job(same, same, "b.png")]
    results = list(run_jobs(jobs, remover, OutputOptions()))
    assert [r.status for r in results] == ["skipped", "failed"]
    assert existing.read_bytes() == b"old" and same.read_bytes() == b"an input"


# --------------------------------------------------------------------------- throughput mode


@pytest.fixture(scope="module")
def throughput_remover(remover: Remover) -> Remover:
    rem = Remover("isnet_fp16", settings=remover.settings, scheduling="throughput").load()
    if rem.session.streams < 2:
        pytest.skip(f"{rem.session.provider} runs one stream here; nothing parallel to test")
    return rem


def test_throughput_mode_runs_parallel_streams_in_input_order(
    tmp_path: Path, throughput_remover: Remover, remover: Remover
) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for p in (CHELSEA, COFFEE, ASTRONAUT):
        shutil.copy(p, inp / p.name)
    touch(inp / "bad.jpg", b"plain text, not a JPEG\n")
    touch(out / "done.png", b"existing output")
    shutil.copy(COFFEE, inp / "done.jpg")
    jobs = [
        Job(inp / "chelsea.jpg", out / "chelsea.png", "chelsea.jpg"),
        Job(inp / "bad.jpg", out / "bad.png", "bad.jpg"),
        Job(inp / "done.jpg", out / "done.png", "done.jpg"),
        Job(inp / "coffee.jpg", out / "coffee.png", "coffee.jpg"),
        Job(inp / "astronaut.jpg", None, "astronaut.jpg"),
    ]
    results = list(run_jobs(jobs, throughput_remover, OutputOptions()))
    assert [r.job for r in results] == jobs
    assert [r.status for r in results] == ["written", "failed", "skipped", "written", "written"]
    assert results[1].error is not None and "not an image" in results[1].error
    assert (out / "done.png").read_bytes() == b"existing output"
    assert list(tmp_path.rglob(".*tmp")) == []
    for r in (results[0], results[3]):
        for key in ("decode", "preprocess", "inference", "postprocess", "encode"):
            assert r.timings[key] >= 0, (key, r.timings)
    # the same cut as the latency-mode session (one thread per stream, so bf16 sums may
    # round differently: allow a level or two, never a different subject)
    assert results[4].data is not None
    with Image.open(io.BytesIO(results[4].data)) as im:
        alpha = np.asarray(im)[:, :, 3].astype(np.int16)
    reference = remover.remove(ASTRONAUT).mask.astype(np.int16)
    assert np.abs(alpha - reference).mean() < 0.5
    assert ((alpha >= 128) == (reference >= 128)).mean() > 0.999


def test_throughput_mode_cancel(tmp_path: Path, throughput_remover: Remover) -> None:
    import threading

    event = threading.Event()
    event.set()
    jobs = [Job(CHELSEA, tmp_path / "a.png", "a"), Job(COFFEE, tmp_path / "b.png", "b")]
    with pytest.raises(CancelledError):
        list(run_jobs(jobs, throughput_remover, OutputOptions(), cancel=event))
    assert list(tmp_path.iterdir()) == []


def test_mode_is_checked() -> None:
    with pytest.raises(InvalidOptionError, match="scheduling must be one of latency, throughput"):
        Remover(scheduling="fast")


# ------------------------------------------------------------- inputs are never outputs (issue 12)


def test_output_into_the_input_folder_never_names_an_input(tmp_path: Path) -> None:
    """``-o`` the input folder itself: outputs take the ``.cutout`` mark (as beside their
    input), so no output is an input and a rerun does not take the outputs as inputs."""
    d = tmp_path / "d"
    jpg, png, sub = touch(d / "a.jpg"), touch(d / "a.png"), touch(d / "s" / "b.jpg")
    for out in (d, d / "s" / ".."):
        jobs, _ = plan_jobs([d], out)
        assert pairs(jobs) == [
            (jpg, out / "a.cutout.png"),
            (png, out / "a.png.cutout.png"),
            (sub, out / "s" / "b.cutout.png"),
        ]
    # the files the explicit inputs' folder receives are named the same way
    jobs, _ = plan_jobs([jpg, png], d)
    assert pairs(jobs) == [(jpg, d / "a.cutout.png"), (png, d / "a.png.cutout.png")]
    jobs, _ = plan_jobs([png], f"{d}/")
    assert pairs(jobs) == [(png, d / "a.cutout.png")]
    # a rerun after the outputs were written plans the same inputs, nothing more
    for j in plan_jobs([d], d)[0]:
        assert j.output is not None
        touch(j.output)
    assert [j.source for j in plan_jobs([d], d)[0]] == [jpg, png, sub]


def test_an_output_that_is_another_input_is_refused(tmp_path: Path, remover: Remover) -> None:
    """``e/a.jpg`` and ``d/a.png`` into ``-o d``: e/a.jpg's output would be d/a.png, an input
    of the same run; it fails alone, whatever ``overwrite`` says (no model work needed)."""
    d, e = tmp_path / "d", tmp_path / "e"
    other = touch(e / "a.jpg", b"not even an image")
    png = touch(d / "a.png", b"an input, never to be written")
    jobs, _ = plan_jobs([other, d], d)
    assert pairs(jobs) == [(other, d / "a.png"), (png, d / "a.cutout.png")]
    touch(d / "a.cutout.png", b"done before")
    # a hard link is the same file under another name
    link = d / "link.png"
    os.link(png, link)
    jobs.append(Job(touch(e / "link.jpg", b"not an image"), link, "link.jpg"))
    for overwrite in (False, True):
        results = list(run_jobs(jobs, remover, OutputOptions(), overwrite=overwrite))
        assert [r.job for r in results] == jobs
        for r, target in ((results[0], d / "a.png"), (results[2], link)):
            assert r.status == "failed", r
            assert r.error is not None and str(target) in r.error and "is an input of this batch" in r.error
        # d/a.png itself: skipped (its output exists), or with overwrite tried and not an image
        assert results[1].status == ("failed" if overwrite else "skipped")
        assert png.read_bytes() == b"an input, never to be written"


def test_a_symlink_loop_fails_alone(tmp_path: Path, remover: Remover) -> None:
    """``ln -s loop.jpg d/loop.jpg``: planning lists it and the run fails that one entry with
    a clear reason (no RuntimeError from Path.resolve), the rest goes on."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "loop.jpg").symlink_to("loop.jpg")
    touch(d / "z.png", b"exists")
    out = tmp_path / "out"
    touch(out / "z.png", b"done before")
    for target in (out, d):
        jobs, _ = plan_jobs([d], target)
        assert [j.source for j in jobs] == [d / "loop.jpg", d / "z.png"]
    jobs, _ = plan_jobs([d], out)
    results = list(run_jobs(jobs, remover, OutputOptions()))
    assert [r.status for r in results] == ["failed", "skipped"]
    assert results[0].error is not None and "loop.jpg" in results[0].error
    assert "symbolic links" in results[0].error


def test_unwritable_output_folder_fails_before_any_inference(
    remover: Remover, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output folder that takes no files (read-only for root too) is found once, before
    any work (issue 24: every image was inferred, then each write failed): no output can be
    written, so run_jobs raises one OutputWriteError and nothing is decoded or inferred; a
    job whose output exists is still just skipped; where only some folders refuse, their
    jobs fail without inference and the rest are written."""
    from cleancut import OutputWriteError
    from test_codecs import read_only_folder

    inp, out = tmp_path / "in", tmp_path / "out"
    for p in (CHELSEA, COFFEE):
        touch(inp / p.name, p.read_bytes())
    (out / "ok").mkdir(parents=True)
    (out / "ro").mkdir()
    touch(out / "ro" / "done.png", b"done before")
    calls: list[str] = []
    real_decode, real_infer = remover.decode, remover.infer
    monkeypatch.setattr(remover, "decode", lambda *a, **k: calls.append("decode") or real_decode(*a, **k))
    monkeypatch.setattr(remover, "infer", lambda *a, **k: calls.append("infer") or real_infer(*a, **k))
    with read_only_folder(out / "ro") as how:
        everything = [
            Job(inp / "chelsea.jpg", out / "ro" / "chelsea.png", "chelsea.jpg"),
            Job(inp / "coffee.jpg", out / "ro" / "sub" / "coffee.png", "coffee.jpg"),  # made later
        ]
        with pytest.raises(
            OutputWriteError, match=r"cannot write .*ro.*no permission.*choose another -o folder"
        ):
            list(run_jobs(everything, remover, OutputOptions()))
        assert calls == [], how
        done = [Job(inp / "coffee.jpg", out / "ro" / "done.png", "coffee.jpg")]
        assert [r.status for r in run_jobs(done, remover, OutputOptions())] == ["skipped"]
        some = [everything[0], Job(inp / "coffee.jpg", out / "ok" / "coffee.png", "coffee.jpg")]
        results = list(run_jobs(some, remover, OutputOptions()))
        assert [r.status for r in results] == ["failed", "written"]
        assert results[0].error is not None and "choose another -o folder" in results[0].error
        assert calls.count("infer") == 1 and calls.count("decode") == 1
        assert sorted(p.name for p in (out / "ro").iterdir()) == ["done.png"]


# --------------------------------------------------------------------------- one set of rules


def test_both_engines_share_planning_through_public_names() -> None:
    """The local batch and the Ray engine take their naming and input-protection rules from
    :mod:`cleancut.planning`, and import no private name of another module: a change to one
    module's insides cannot silently change the other engine."""
    import ast

    from cleancut import batch, planning

    assert batch.plan_jobs is planning.plan_jobs and batch.Job is planning.Job
    src = Path(planning.__file__).parent
    offenders = []
    for path in [src / "batch.py", src / "planning.py", *sorted((src / "distributed").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"batch", "planning", "local_batch"}
                and node.attr.startswith("_")
            ):
                offenders.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert not offenders, offenders


FIRST_RUNS_AT_ONCE = """
import sys, threading
sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows more
import numpy as np
from cleancut import Remover, Settings
rem = Remover("isnet_fp16", backend="openvino", scheduling="throughput",
              settings=Settings.from_env(environ={}, cache_dir=sys.argv[1], offline=True)).load()
x = np.zeros((1, 3, 1024, 1024), np.float32)
barrier = threading.Barrier(3)
def first_run():
    barrier.wait()
    rem.session.run(x)
threads = [threading.Thread(target=first_run) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok")
"""


def test_openvino_streams_first_runs_at_once_do_not_deadlock(model_settings: Any) -> None:
    """Three threads making the process's first OpenVINO inference at the same moment (the
    folder batch's streams do): pyopenvino's first call initialises statics while holding the
    GIL, and without OpenVINOSession.run letting the first call run alone such a process hung
    about half the time (a CLI batch hung once in CI-like runs). Three fresh processes; a hang
    is a timeout here."""
    import subprocess
    import sys

    pytest.importorskip("openvino")
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", FIRST_RUNS_AT_ONCE, str(model_settings.cache_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
