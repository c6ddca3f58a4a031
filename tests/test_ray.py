"""The Ray engine, end to end on a real local Ray (2 CPUs) with the real fp16 model.

Planning is checked against the local batch's own ``plan_jobs`` (same names, same
collisions); then one tree of photos — three bundled photos in nested folders, a generated
one, a corrupt file and files that are not inputs — goes through Ray: the cut-outs must
match the local Remover's masks, the manifest must say what happened to each file, a rerun
must do no inference, ``--overwrite`` must redo, ``file://`` URIs go through fsspec, and the
CLI's ``--engine ray`` prints the local batch's summary and exit code. About 20 inferences
on one thread each.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cleancut import InvalidOptionError, Remover, Settings
from cleancut.batch import OutputOptions, plan_jobs
from cleancut.cli import cli
from cleancut.distributed import MANIFEST_NAME, RayResult, plan_ray_jobs, read_manifest, run_ray
from cleancut.distributed import driver as ray_driver
from cleancut.distributed import jobs as ray_jobs
from cleancut.distributed import manifest as ray_manifest
from cleancut.options import EngineOptions
from conftest import EXAMPLES

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'cleancut[ray]')")
fsspec = pytest.importorskip("fsspec", reason="fsspec is not installed (pip install 'cleancut[ray]')")


# Ray Data's own context reads its deprecated settings on every run
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

#: One actor with one thread: the machine has 2 cores and the driver needs one.
ENGINE: dict[str, Any] = {"engine": EngineOptions(threads=1), "num_workers": 1, "batch_size": 2}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iou(a: np.ndarray, b: np.ndarray, threshold: int = 128) -> float:
    x, y = a >= threshold, b >= threshold
    union = np.logical_or(x, y).sum()
    return 1.0 if union == 0 else float(np.logical_and(x, y).sum() / union)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def generated_photo() -> bytes:
    """A made-up product shot: a dark disc on a light, slightly noisy backdrop."""
    rng = np.random.default_rng(7)
    h, w = 360, 480
    yy, xx = np.mgrid[:h, :w]
    px = np.clip(rng.normal(225, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    disc = (yy - 180) ** 2 + (xx - 240) ** 2 < 110**2
    px[disc] = (150, 40, 30)
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, "PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """One local Ray for the module; run_ray uses it as it is and leaves it running."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four photos (two nested), a corrupt JPEG, and files that are never inputs."""
    root = tmp_path_factory.mktemp("photos")
    touch(root / "astronaut.jpg", (EXAMPLES / "astronaut.jpg").read_bytes())
    touch(root / "shop" / "chelsea.jpg", (EXAMPLES / "chelsea.jpg").read_bytes())
    touch(root / "shop" / "deep" / "coffee.jpg", (EXAMPLES / "coffee.jpg").read_bytes())
    touch(root / "generated.png", generated_photo())
    # a JPEG header, then garbage: it is sniffed as JPEG and fails to decode
    touch(root / "shop" / "broken.jpg", b"\xff\xd8\xff\xe0" + os.urandom(2000))
    touch(root / "notes.txt", b"not an image")
    touch(root / ".hidden" / "x.jpg", (EXAMPLES / "coffee.jpg").read_bytes())
    touch(root / "old.cutout.png", b"an earlier output, never an input")
    return root


GOOD = {
    "astronaut.jpg": "astronaut.png",
    "generated.png": "generated.png",
    "shop/chelsea.jpg": "shop/chelsea.png",
    "shop/deep/coffee.jpg": "shop/deep/coffee.png",
}
BROKEN = "shop/broken.jpg"


@pytest.fixture(scope="module")
def local_masks(remover: Remover, tree: Path) -> dict[str, np.ndarray]:
    """What the local Remover cuts out of each good input: the reference for Ray's outputs."""
    return {rel: remover.remove(tree / rel).mask for rel in GOOD}


@pytest.fixture(scope="module")
def first_run(
    local_ray: Any, tree: Path, model_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[RayResult], dict[str, str]]:
    out = tmp_path_factory.mktemp("cutouts")
    before = {str(p.relative_to(tree)): sha(p) for p in tree.rglob("*") if p.is_file()}
    # two actors here (the rest of the module uses one): rows are shared out between them;
    # the engine's fields one by one, as earlier versions took them (the rest use engine=)
    results = list(
        run_ray([tree], out, OutputOptions(), settings=model_settings, num_workers=2, threads=1, batch_size=2)
    )
    return out, results, before


# --------------------------------------------------------------------------- planning (no Ray)


def test_plan_matches_the_local_batch(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for rel in [
        "a.jpg",
        "a.png",
        "b.webp",
        "z/c.jpeg",
        "z/a.jpg",
        "y/d.tif",
        ".h/e.jpg",
        "f.cutout.png",
        "g.txt",
    ]:
        touch(src / rel)
    out = tmp_path / "out"
    local, fmt = plan_jobs([src], out, "webp")
    planned, ray_fmt = plan_ray_jobs([src], out, "webp")
    assert fmt == ray_fmt == "webp"
    assert [(str(j.source), str(j.output)) for j in local] == [(j.input, j.output) for j in planned]
    # collisions get the local batch's fallback names
    assert {Path(j.output).relative_to(out).as_posix() for j in planned} >= {"a.webp", "a.png.webp"}


def test_remote_listing_names_like_a_folder(tmp_path: Path) -> None:
    """The listing used for s3:// and friends (here fsspec's in-memory filesystem) finds the
    same inputs in the same order as the local scan."""
    rels = [
        "a.jpg",
        "a.png",
        "z/c.jpeg",
        "z/a.jpg",
        "y/d.tif",
        ".h/e.jpg",
        "f.cutout.png",
        "g.txt",
        "m/.n.jpg",
    ]
    mem = fsspec.filesystem("memory")
    for rel in rels:
        touch(tmp_path / rel)
        mem.pipe_file(f"/tree-{os.getpid()}/{rel}", b"x")
    local = [rel.as_posix() for _, rel in ray_jobs.local_pairs(str(tmp_path), None)]
    remote = [rel.as_posix() for _, rel in ray_jobs.remote_pairs(f"memory:///tree-{os.getpid()}", None)]
    assert remote == local == ["a.jpg", "a.png", "y/d.tif", "z/a.jpg", "z/c.jpeg"]


def test_unusable_locations_are_refused(tmp_path: Path) -> None:
    touch(tmp_path / "in" / "a.jpg")
    with pytest.raises(InvalidOptionError, match="memory:// lives inside one process"):
        plan_ray_jobs(["memory://photos"], tmp_path / "out")
    with pytest.raises(InvalidOptionError, match="cannot write to an http"):
        plan_ray_jobs([tmp_path / "in"], "https://example.com/out/")
    with pytest.raises(InvalidOptionError, match="stdin"):
        plan_ray_jobs(["-"], tmp_path / "out")
    touch(tmp_path / "file.png")
    with pytest.raises(InvalidOptionError, match="must be a folder"):
        plan_ray_jobs([tmp_path / "in"], tmp_path / "file.png")
    # a missing -o named like a file is refused, not made a folder of that name (issue 24)
    with pytest.raises(InvalidOptionError, match=r"named like a \.png file, but the Ray engine writes into"):
        plan_ray_jobs([tmp_path / "in"], tmp_path / "new.png")
    assert plan_ray_jobs([tmp_path / "in"], f"{tmp_path / 'new.png'}/")[0][0].output == str(
        tmp_path / "new.png" / "a.png"
    )
    # one image per http(s) URL, named after its last path segment; never listed
    jobs, _ = plan_ray_jobs(["https://example.com/shop/a.jpg?w=1"], tmp_path / "out")
    assert [(j.input, j.output) for j in jobs] == [
        ("https://example.com/shop/a.jpg?w=1", str(tmp_path / "out" / "a.png"))
    ]


def test_manifest_survives_a_cut_line(tmp_path: Path) -> None:
    """A line cut short by a crash is ignored, and the next run's rows still parse."""
    first = ray_manifest.Manifest(str(tmp_path), "run1")
    first.append(RayResult("a.jpg", str(tmp_path / "a.png"), "written", timings={"inference": 0.5}))
    first.close()
    with (tmp_path / MANIFEST_NAME).open("a") as f:
        f.write('{"input": "b.jpg", "status": "wri')
    second = ray_manifest.Manifest(str(tmp_path), "run2")
    second.append(RayResult("c.jpg", str(tmp_path / "c.png"), "failed", "c.jpg is empty (0 bytes)"))
    second.close()
    rows = read_manifest(tmp_path)
    assert [(r["input"], r["status"], r["run"]) for r in rows] == [
        ("a.jpg", "written", "run1"),
        ("c.jpg", "failed", "run2"),
    ]
    assert rows[0]["timings"] == {"inference": 0.5} and rows[1]["error"] == "c.jpg is empty (0 bytes)"


def test_manifest_ignores_undecodable_and_ill_typed_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not UTF-8 and JSON that is not a row ([1, 2], a string, an input that
    is a number, a status that is an object) are damaged lines, warned about and skipped
    like a cut line (issue 24); a file name holding U+2028 or U+0085 stays one row."""
    first = ray_manifest.Manifest(str(tmp_path), "run1")
    first.append(RayResult("a\u2028b\x85.jpg", str(tmp_path / "a.png"), "written"))
    first.close()
    with (tmp_path / MANIFEST_NAME).open("ab") as f:
        f.write(b'{"input": "\xff\xfe.jpg", "output": "x", "status": "written"}\n')
        f.write(b"\xc3\x28 not utf-8 at all\n")
        for bad in ["[1,2]", '"str"', '{"input":5,"status":{}}', '{"input":"i","output":"o","status":"?"}']:
            f.write(bad.encode() + b"\n")
        f.write(b'{"input":"i","output":"o","status":"written","timings":[1]}\n')
    second = ray_manifest.Manifest(str(tmp_path), "run2")
    second.append(RayResult("c.jpg", str(tmp_path / "c.png"), "failed", "bad"))
    second.close()
    with caplog.at_level(logging.WARNING, logger="cleancut.distributed.manifest"):
        rows = read_manifest(tmp_path)
    assert [(r["input"], r["status"], r["run"]) for r in rows] == [
        ("a\u2028b\x85.jpg", "written", "run1"),
        ("c.jpg", "failed", "run2"),
    ]
    damaged = [r for r in caplog.records if "ignoring a damaged manifest line" in r.getMessage()]
    assert len(damaged) == 7
    # the same rules for the parts of an object store's manifest (bytes, no decoding first)
    assert list(ray_manifest.parse_lines(b"\xff\n[1,2]\n")) == []


def test_unwritable_output_folder_is_one_error_before_ray(tmp_path: Path) -> None:
    """-o a folder that takes no files: one OutputWriteError (one CLI line, exit 1) before
    Ray starts, not a PermissionError traceback from the manifest (issue 24)."""
    from cleancut import OutputWriteError
    from test_codecs import read_only_folder

    touch(tmp_path / "in" / "a.jpg", (EXAMPLES / "chelsea.jpg").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    with read_only_folder(out) as how:
        with pytest.raises(OutputWriteError, match=r"cannot write .*out: no permission.*choose another -o"):
            next(run_ray([tmp_path / "in"], out, **ENGINE))
        res = CliRunner().invoke(cli, [str(tmp_path / "in"), "-o", str(out), "--engine", "ray"])
        assert isinstance(res.exception, SystemExit) and res.exit_code == 1, (how, res.output)
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {out}: no permission"), lines
        assert lines[0].endswith("; choose another -o folder or fix its permissions")
        assert list(out.iterdir()) == []
        assert not ray.is_initialized()


def test_missing_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra
    with pytest.raises(InvalidOptionError, match=r"pip install 'cleancut\[ray\]'"):
        ray_driver.import_ray()


def test_one_engine_value() -> None:
    """run_ray takes one EngineOptions; the fields one by one (earlier versions' keywords)
    make the same value, and the two forms together are refused."""
    assert ray_driver._engine_of(None, model=None, device="cpu", backend=None, strict=None, threads=2) == (
        EngineOptions(device="cpu", threads=2)
    )
    engine = EngineOptions(model="isnet", threads=3)
    assert (
        ray_driver._engine_of(engine, model=None, device=None, backend=None, strict=None, threads=None)
        is engine
    )
    with pytest.raises(InvalidOptionError, match="not both"):
        next(run_ray(["x.jpg"], "out", engine=engine, threads=1))


def test_cli_usage_errors(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    runner = CliRunner()
    res = runner.invoke(cli, [str(tmp_path / "a.jpg"), "--engine", "ray"])
    assert res.exit_code == 2 and "give -o FOLDER" in res.output
    res = runner.invoke(cli, [str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o"), "--num-workers", "2"])
    assert res.exit_code == 2 and "only with --engine ray" in res.output


# --------------------------------------------------------------------------- through Ray


def test_cutouts_match_the_local_remover(
    first_run: tuple[Path, list[RayResult], dict[str, str]], local_masks: dict[str, np.ndarray]
) -> None:
    out, results, _ = first_run
    by_input = {Path(r.input).as_posix(): r for r in results}
    assert len(results) == len(GOOD) + 1
    for rel, out_rel in GOOD.items():
        r = next(v for k, v in by_input.items() if k.endswith("/" + rel))
        assert r.status == "written", r
        assert Path(r.output) == out / out_rel
        with Image.open(out / out_rel) as img:
            assert img.format == "PNG" and img.mode == "RGBA"
            alpha = np.asarray(img.getchannel("A"))
        assert iou(alpha, local_masks[rel]) >= 0.99, rel
        assert r.timings["inference"] > 0 and r.worker


def test_a_corrupt_file_fails_alone(
    first_run: tuple[Path, list[RayResult], dict[str, str]], tree: Path, remover: Remover
) -> None:
    out, results, _ = first_run
    broken = next(r for r in results if r.input.endswith(BROKEN))
    assert broken.status == "failed"
    # the same message the local library gives for this file, naming it
    with pytest.raises(Exception) as local_error:
        remover.decode(tree / BROKEN)
    assert broken.error == str(local_error.value)
    assert str(tree / BROKEN) in broken.error
    assert not (out / "shop" / "broken.png").exists()
    assert sum(r.status == "written" for r in results) == len(GOOD)


def test_manifest_and_untouched_inputs(
    first_run: tuple[Path, list[RayResult], dict[str, str]], tree: Path
) -> None:
    out, results, before = first_run
    rows = read_manifest(out)
    assert (out / MANIFEST_NAME).is_file()
    assert sorted((r["input"], r["status"]) for r in rows) == sorted((r.input, r.status) for r in results)
    assert {r["run"] for r in rows} == {rows[0]["run"]}
    for row in rows:
        assert set(row) >= {"input", "output", "status", "error", "seconds", "timings", "worker"}
        if row["status"] == "written":
            assert row["error"] is None and row["timings"]["inference"] > 0 and row["seconds"] > 0
        else:
            assert row["error"] and row["input"].endswith(BROKEN)
    # inputs never written; no temp files; only outputs and the manifest in -o
    assert {str(p.relative_to(tree)): sha(p) for p in tree.rglob("*") if p.is_file()} == before
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == sorted([*GOOD.values(), MANIFEST_NAME])


def test_rerun_does_no_inference_and_resumes(
    first_run: tuple[Path, list[RayResult], dict[str, str]], tree: Path, model_settings: Settings
) -> None:
    out, _, _ = first_run
    rows_before = read_manifest(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    # one output lost since (deleted): the rerun must make exactly that one again
    lost = out / "shop" / "chelsea.png"
    lost.unlink()
    results = list(run_ray([tree], out, settings=model_settings, **ENGINE))
    status = {Path(r.input).relative_to(tree).as_posix(): r for r in results}
    assert status["shop/chelsea.jpg"].status == "written"
    assert status[BROKEN].status == "failed"  # failed rows are tried again
    for rel in set(GOOD) - {"shop/chelsea.jpg"}:
        r = status[rel]
        assert r.status == "skipped" and r.timings == {} and r.seconds == 0.0  # answered without Ray
        out_file = out / GOOD[rel]
        assert out_file.stat().st_mtime_ns == mtimes[out_file]
    assert lost.is_file()
    # outputs the manifest already records as written get no new row
    new_rows = read_manifest(out)[len(rows_before) :]
    assert sorted(Path(r["input"]).relative_to(tree).as_posix() for r in new_rows) == [
        BROKEN,
        "shop/chelsea.jpg",
    ]


def test_overwrite_redoes(
    first_run: tuple[Path, list[RayResult], dict[str, str]], model_settings: Settings, tree: Path
) -> None:
    out, _, _ = first_run
    target = out / "generated.png"
    before = target.stat().st_mtime_ns
    (r,) = run_ray([tree / "generated.png"], out, settings=model_settings, overwrite=True, **ENGINE)
    assert r.status == "written" and r.timings["inference"] > 0
    assert target.stat().st_mtime_ns > before
    (r,) = run_ray([tree / "generated.png"], out, settings=model_settings, **ENGINE)
    assert r.status == "skipped"


def test_file_uris_go_through_fsspec(
    local_ray: Any, tree: Path, model_settings: Settings, tmp_path: Path, local_masks: dict[str, np.ndarray]
) -> None:
    """file:// inputs are read and outputs written by fsspec, as s3:// would be, and the
    manifest is a folder of part files (object stores cannot append); http(s) inputs are
    fetched by cleancut.urls, never by fsspec."""
    out_uri = f"file://{tmp_path}/out"
    options = OutputOptions(format="webp", quality=1.0)  # lossless WebP keeps alpha exactly
    # an http(s) input goes through cleancut.urls' guarded fetcher, which refuses loopback
    private = "http://127.0.0.1:9/private.jpg"
    inputs = [f"file://{tree}/shop", private]
    results = list(run_ray(inputs, out_uri, options, settings=model_settings, **ENGINE))
    got = {r.output: r.status for r in results}
    assert got == {
        f"file://{tmp_path}/out/chelsea.webp": "written",
        f"file://{tmp_path}/out/deep/coffee.webp": "written",
        f"file://{tmp_path}/out/broken.webp": "failed",
        f"file://{tmp_path}/out/private.webp": "failed",
    }
    refused = next(r for r in results if r.input == private)
    assert refused.error is not None and "loopback address; fetching it is refused" in refused.error
    with Image.open(tmp_path / "out" / "deep" / "coffee.webp") as img:
        assert img.format == "WEBP"
        alpha = np.asarray(img.getchannel("A"))
    assert iou(alpha, local_masks["shop/deep/coffee.jpg"]) >= 0.99
    parts = list((tmp_path / "out" / ray_manifest.MANIFEST_PARTS).glob("*.jsonl"))
    assert len(parts) == 1
    assert sorted(r["status"] for r in read_manifest(out_uri)) == ["failed", "failed", "written", "written"]
    assert not [p for p in (tmp_path / "out").rglob("*") if "tmp" in p.name]
    # a rerun skips what exists, found by one listing of the output folder
    again = list(run_ray(inputs, out_uri, options, settings=model_settings, **ENGINE))
    assert sorted(r.status for r in again) == ["failed", "failed", "skipped", "skipped"]


def test_cli_engine_ray(local_ray: Any, tree: Path, model_settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "in"
    touch(src / "chelsea.jpg", (tree / "shop" / "chelsea.jpg").read_bytes())
    touch(src / "broken.jpg", (tree / BROKEN).read_bytes())
    out = tmp_path / "out"
    args = [str(src), "-o", str(out), "--engine", "ray", "--num-workers", "1", "--threads", "1", "--type"]
    args += ["mask", "--cache-dir", str(model_settings.cache_dir), "--offline"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output  # one file failed
    assert "error: " in res.output and "broken.jpg" in res.output
    assert "1 written, 0 skipped, 1 failed, of 2" in res.output
    with Image.open(out / "chelsea.png") as img:
        assert img.mode == "L"  # --type mask reached the actor
    rows = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    assert sorted(r["status"] for r in rows) == ["failed", "written"]
    res = CliRunner().invoke(cli, [*args, "--overwrite"])
    assert "1 written, 0 skipped, 1 failed, of 2" in res.output


# ------------------------------------------------------------- inputs are never outputs (issue 12)


def test_output_into_the_input_folder_is_named_apart(tmp_path: Path) -> None:
    """``-o`` the input folder: the local batch's ``.cutout`` names, as a path or a URI, so
    no output is an input and a rerun does not take the outputs as inputs."""
    d = tmp_path / "d"
    for rel in ("a.jpg", "a.png", "s/b.jpg"):
        touch(d / rel)
    expected = [("a.jpg", "a.cutout.png"), ("a.png", "a.png.cutout.png"), ("s/b.jpg", "s/b.cutout.png")]
    jobs, _ = plan_ray_jobs([d], d)
    assert [(j.input, j.output) for j in jobs] == [(str(d / i), str(d / o)) for i, o in expected]
    assert [Path(j.output) for j in jobs] == [j.output for j in plan_jobs([d], d)[0]]
    uri = f"file://{d}"
    jobs, _ = plan_ray_jobs([uri], uri + "/")
    assert [(j.input, j.output) for j in jobs] == [(f"{uri}/{i}", f"{uri}/{o}") for i, o in expected]
    for _, o in expected:
        touch(d / o)
    assert len(plan_ray_jobs([d], d)[0]) == len(plan_ray_jobs([uri], uri)[0]) == 3


def test_fifo_symlink_loop_and_an_input_as_output(
    local_ray: Any, model_settings: Settings, tmp_path: Path
) -> None:
    """A FIFO named x.jpg and a symlink loop in the input folder each fail alone with a reason
    (as paths and as ``file://`` URIs; reading the FIFO would block for ever), and an output
    that is another input of the run is refused. A watchdog opens the FIFO's writing end if
    the run is still going after two minutes, so that a regression fails instead of hanging."""
    d, e = tmp_path / "d", tmp_path / "e"
    touch(d / "chelsea.jpg", (EXAMPLES / "chelsea.jpg").read_bytes())
    touch(d / "x.png", b"an input, never to be written")
    touch(d / "x.cutout.png", b"done before")
    touch(e / "x.jpg", b"not read: its output is an input")
    os.mkfifo(d / "fifo.jpg")
    (d / "loop.jpg").symlink_to("loop.jpg")
    finished = threading.Event()
    unblocked: list[str] = []

    def watchdog() -> None:
        if finished.wait(120):
            return
        while not finished.is_set():
            try:
                fd = os.open(d / "fifo.jpg", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader waiting (yet)
                finished.wait(1)
                continue
            os.close(fd)  # the blocked reader sees the end of the file
            unblocked.append("the run blocked on the FIFO")
            finished.wait(1)

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    try:
        local = list(run_ray([e / "x.jpg", d], d, settings=model_settings, **ENGINE))
        uri = f"file://{d}"
        remote = list(run_ray([uri], f"file://{tmp_path}/out", settings=model_settings, **ENGINE))
    finally:
        finished.set()
        guard.join()
    assert unblocked == []
    got = {Path(r.input).name: r for r in local}
    assert {k: r.status for k, r in got.items()} == {
        "x.jpg": "failed",
        "chelsea.jpg": "written",
        "fifo.jpg": "failed",
        "loop.jpg": "failed",
        "x.png": "skipped",
    }
    assert f"{d / 'x.png'}: it is an input of this batch" in str(got["x.jpg"].error)
    assert got["chelsea.jpg"].output == str(d / "chelsea.cutout.png")
    assert "not a file" in str(got["fifo.jpg"].error)
    assert "symbolic links" in str(got["loop.jpg"].error)
    assert (d / "x.png").read_bytes() == b"an input, never to be written"
    got = {r.input.rsplit("/", 1)[-1]: r for r in remote}
    assert {k: r.status for k, r in got.items()} == {
        "chelsea.jpg": "written",
        "fifo.jpg": "failed",
        "loop.jpg": "failed",
        "x.png": "failed",  # not an image
    }
    assert f"not a file: {uri}/fifo.jpg" in str(got["fifo.jpg"].error)
    assert f"{uri}/loop.jpg" in str(got["loop.jpg"].error) and "symbolic links" in str(got["loop.jpg"].error)
    with Image.open(tmp_path / "out" / "chelsea.png") as img:
        assert img.mode == "RGBA"


# ------------------------------------------------------------- Ray Data's MapWorker notice (issue 24)

#: What Ray 2.60's core worker printed on every run (issue 24, item 19)
MAPWORKER_NOTICE = (
    "[2026-12-07 10:38:11,991 E 31850 31850] core_worker.cc:2465: Actor with class name: "
    "'MapWorker(MapBatches(CutoutActor))' and ID: 'a998891d62bbc6b292a704e801000000' has constructor "
    "arguments in the object store and max_restarts > 0. If the arguments in the object store go out "
    "of scope or are lost, the actor restart will fail. See https://github.com/ray-project/ray/issues/"
    "53727 for more details."
)


def test_the_stderr_filter_drops_only_the_mapworker_notice(capfd: pytest.CaptureFixture[str]) -> None:
    """Written to fd 2 from below Python (as Ray's C++ logger does): the notice goes, every
    other line (another core_worker error included) and a bar's redraw without a line end
    come through, in order."""
    other = "[2026-12-07 10:38:12,000 E 1 1] core_worker.cc:99: a real error about an object"
    with ray_driver.without_ray_data_noise():
        os.write(2, f"before\n{MAPWORKER_NOTICE}\n".encode())
        os.write(2, MAPWORKER_NOTICE[:40].encode())  # a line arriving in pieces
        os.write(2, f"{MAPWORKER_NOTICE[40:]}\n{other}\n".encode())
        os.write(2, b"\r 50%|#####     | 1/2")
        os.write(2, b"\n[partial")
    err = capfd.readouterr().err
    assert err == f"before\n{other}\n\r 50%|#####     | 1/2\n[partial"


def test_a_cli_ray_run_prints_no_mapworker_notice(model_settings: Settings, tmp_path: Path) -> None:
    """A real `cleancut IN -o OUT --engine ray` (its own local Ray, in a child process):
    its stderr is the run's lines and summary, without Ray Data's MapWorker notice."""
    import subprocess

    touch(tmp_path / "in" / "chelsea.jpg", (EXAMPLES / "chelsea.jpg").read_bytes())
    env = {**os.environ, "CLEANCUT_CACHE_DIR": str(model_settings.cache_dir), "CLEANCUT_OFFLINE": "1"}
    args = [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--engine", "ray", "--num-workers", "1"]
    proc = subprocess.run(
        [sys.executable, "-m", "cleancut", *args, "--threads", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "core_worker.cc" not in proc.stderr and "max_restarts" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("1 written, 0 skipped, 0 failed, of 1 in"), proc.stderr


def test_a_model_file_of_your_own_runs_on_every_actor(local_ray: Any, tmp_path: Path) -> None:
    """The engine's model spec (a path and its family) reaches the actors: each cuts a flat
    photo to the family's value for it."""
    from tinygraphs import REFERENCES, flat_photo, make_graph

    rgb = (250, 10, 60)
    graph = make_graph(tmp_path / "mine.onnx", height=128, head="logits")
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(flat_photo(rgb, 60 + i, 80)).save(src / f"flat{i}.png")
    engine = EngineOptions(
        threads=1, model=str(graph), model_family="birefnet", device="cpu", backend="onnxruntime"
    )
    settings = Settings.from_env(environ={}, cache_dir=tmp_path / "cache", offline=True, npm="0")
    out = tmp_path / "out"
    results = list(run_ray([src], out, OutputOptions(), settings=settings, engine=engine, num_workers=1))
    assert [r.status for r in results] == ["written"] * 3
    want = 255 / (1 + np.exp(-REFERENCES["birefnet"].z(rgb)))
    for i in range(3):
        with Image.open(out / f"flat{i}.png") as img:
            alpha = np.asarray(img.getchannel("A"))
        assert abs(float(np.median(alpha)) - want) <= 1.5
