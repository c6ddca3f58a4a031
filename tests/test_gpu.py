"""The GPU path: batched inference with I/O binding on CUDA / TensorRT.

Runs only where onnxruntime has a GPU provider (onnxruntime-gpu in place of onnxruntime on a
CUDA machine: README, GPU); elsewhere each test is skipped with the reason. The dynamic-batch
graph that the GPU path loads is checked on the CPU too, since its correctness does not need a
GPU, and so is the install check (two onnxruntime builds at once, a CUDA provider that does not
load) in scratch venvs with the real onnxruntime-gpu wheel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import shlex
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cleancut import Remover, Settings
from cleancut.batch import OutputOptions, plan_jobs, run_jobs
from cleancut.inference.runtime import create_onnxruntime_session, gpu_providers_present
from cleancut.io.decode import decode
from cleancut.models import MODELS
from cleancut.models.prepare import prepare
from cleancut.models.store import fetch_model
from conftest import imgly_preprocess

needs_gpu = pytest.mark.skipif(
    not gpu_providers_present(), reason="no GPU execution provider in this onnxruntime build"
)


def test_dynamic_batch_graph_matches_single_images(model_settings: Settings, photo_paths: list[Path]) -> None:
    spec = MODELS["isnet_fp16"]
    path = prepare(spec, fetch_model(spec, model_settings), spec.sha256 or "", model_settings, gpu=True).path
    sess = create_onnxruntime_session(path, device="cpu")
    assert not isinstance(sess.session.get_inputs()[0].shape[0], int)
    assert sess.max_batch == 1  # batches are for GPUs: on a CPU one image fills the cores
    xs = [imgly_preprocess(decode(p, max_pixels=10**8).pixels) for p in photo_paths[:2]]
    together = sess.session.run(None, {"input": np.concatenate(xs)})[0]
    for i, x in enumerate(xs):
        alone = sess.session.run(None, {"input": x})[0]
        assert np.abs(together[i] - alone[0]).max() < 1e-5


@needs_gpu
def test_gpu_strict_runs_on_the_gpu_with_batches(model_settings: Settings) -> None:
    rem = Remover("isnet_fp16", device="gpu", strict=True, settings=model_settings).load()
    assert rem.session.on_gpu
    assert rem.session.max_batch > 1
    assert rem.describe()["backend"] == "onnxruntime"


@needs_gpu
def test_gpu_batch_equals_single_images(model_settings: Settings, photo_paths: list[Path]) -> None:
    rem = Remover("isnet_fp16", device="gpu", strict=True, settings=model_settings).load()
    xs = [imgly_preprocess(decode(p, max_pixels=10**8).pixels) for p in photo_paths]
    together = rem.infer(np.concatenate(xs))
    for i, x in enumerate(xs):
        alone = rem.infer(x)
        assert np.abs(together[i] - alone[0]).mean() < 1e-3  # fp16 kernels may pick other tiles


@needs_gpu
def test_gpu_folder_run(model_settings: Settings, photo_paths: list[Path], tmp_path: Path) -> None:
    rem = Remover("isnet_fp16", device="gpu", strict=True, settings=model_settings).load()
    jobs, fmt = plan_jobs([str(p) for p in photo_paths], tmp_path / "out")
    results = list(run_jobs(jobs, rem, OutputOptions(format=fmt)))
    assert [r.status for r in results] == ["written"] * len(photo_paths)
    for job in jobs:
        assert job.output is not None and job.output.stat().st_size > 0


def test_video_frames_go_through_in_batches_where_the_session_takes_them(
    model_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cleancut.video.cut.network_outputs on a session that takes batches (here the dynamic
    batch graph on the CPU, told to take 3, as a GPU session is): 4 frames run as 3 + 1, in
    order, each output the one-by-one run's; cut_frames (and so remove_video) goes through it."""
    pytest.importorskip("av")
    from cleancut.video import cut_frames
    from cleancut.video.cut import network_outputs

    rng = np.random.default_rng(5)
    base = decode(Path(__file__).resolve().parents[1] / "examples" / "chelsea.jpg", max_pixels=10**8).pixels
    base = base[::4, ::4].astype(int)
    frames = [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(4)]
    rem = Remover("isnet_fp16", device="cpu", backend="onnxruntime", settings=model_settings).load()
    assert rem.session.max_batch == 1
    plain = [y for _, _, y in network_outputs(((f, i) for i, f in enumerate(frames)), rem, "default")]

    spec = MODELS["isnet_fp16"]
    path = prepare(spec, fetch_model(spec, model_settings), spec.sha256 or "", model_settings, gpu=True).path
    batched = create_onnxruntime_session(path, device="cpu")
    batched.max_batch = 3
    sizes: list[int] = []
    run = batched.run
    monkeypatch.setattr(batched, "run", lambda x: sizes.append(x.shape[0]) or run(x))
    monkeypatch.setattr(rem, "_session", batched)  # the same remover, now on a batching session
    got = list(network_outputs(((f, i) for i, f in enumerate(frames)), rem, "default"))
    assert sizes == [3, 1]
    assert [tag for _, tag, _ in got] == [0, 1, 2, 3]
    for (_, _, y), y1 in zip(got, plain, strict=True):
        assert y.shape == y1.shape == (1, 1, 1024, 1024) and np.abs(y - y1).max() < 1e-3
    sizes.clear()
    cuts = list(cut_frames(iter(frames), remover=rem))
    assert sizes == [3, 1] and len(cuts) == 4


# --------------------------------------------------------------------------- the install check
# Real onnxruntime wheels in scratch venvs (no --system-site-packages): what a user gets from
# `pip install onnxruntime onnxruntime-gpu`, what cleancut says about it, and that the fix it
# prints works. No GPU needed: onnxruntime-gpu lists its CUDA provider on any Linux machine;
# without the CUDA libraries the provider fails to load, which is the other case to report.

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".cache" / "ort-wheels"
ASTRONAUT = REPO / "examples" / "astronaut.jpg"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PIP_DOWNLOAD = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:"]


@pytest.fixture(scope="module")
def ort_wheels() -> dict[str, Path]:
    """The onnxruntime wheel this suite runs on and the newest onnxruntime-gpu, downloaded
    once (``pip download``) into ``.cache/ort-wheels``."""
    import onnxruntime

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("onnxruntime-gpu wheels with the CUDA provider are published for Linux x86_64/aarch64")
    WHEELS.mkdir(parents=True, exist_ok=True)
    wanted = {"onnxruntime": f"onnxruntime=={onnxruntime.__version__}", "onnxruntime-gpu": "onnxruntime-gpu"}
    found: dict[str, Path] = {}
    for name, requirement in wanted.items():
        version = onnxruntime.__version__ if name == "onnxruntime" else ""
        pattern = f"{name.replace('-', '_')}-{version}*.whl"
        have = sorted(WHEELS.glob(pattern))
        if not have:
            got = subprocess.run(
                [*PIP_DOWNLOAD, "-d", str(WHEELS), requirement],
                capture_output=True,
                text=True,
                timeout=900,
            )
            have = sorted(WHEELS.glob(pattern))
            if got.returncode != 0 or not have:
                pytest.skip(f"pip download {requirement} failed: {got.stderr.strip()[-300:]}")
        found[name] = have[-1]
    return found


class ScratchVenv:
    """A venv of its own onnxruntime builds; every other package (and cleancut's source) is
    borrowed from the suite's environment through a ``.pth`` to a folder of links that leaves
    out that environment's onnxruntime, so only the scratch venv's builds are seen."""

    def __init__(self, root: Path, wheels: dict[str, Path]) -> None:

        self.root, self.wheels = root, wheels
        venv.EnvBuilder(with_pip=True, system_site_packages=False).create(root)
        self.python = root / "bin" / "python"
        site = Path(
            subprocess.run(
                [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        borrowed = root / "borrowed"
        borrowed.mkdir()
        ours = Path(sysconfig.get_paths()["purelib"])
        skip = ("onnxruntime", "cleancut", "__pycache__", "_editable_impl", "__editable__")
        for entry in ours.iterdir():
            if entry.name.startswith(skip) or entry.suffix == ".pth" or (site / entry.name).exists():
                continue
            (borrowed / entry.name).symlink_to(entry)
        (site / "zz_borrowed.pth").write_text(f"{borrowed}\n{REPO / 'src'}\n")

    def pip(self, *args: str) -> None:

        subprocess.run(
            [str(self.python), "-m", "pip", "-q", "--disable-pip-version-check", *args],
            check=True,
            capture_output=True,
            timeout=600,
        )

    def install(self, *names: str) -> None:
        """``pip install`` of these builds, in this order, from the downloaded wheels."""
        for name in names:
            self.pip("install", "--no-deps", str(self.wheels[name]))

    def cleancut(self, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]:
        """``python -m cleancut ARGS`` in the venv: (exit code, stdout bytes, stderr text)."""

        env = {
            **os.environ,
            "CLEANCUT_OFFLINE": "1",
            "CLEANCUT_NPM": "0",
            "CLEANCUT_CACHE_DIR": os.environ.get("CLEANCUT_TEST_CACHE", str(REPO / ".cache" / "cleancut")),
        }
        env.pop("PYTHONPATH", None)
        done = subprocess.run(
            [str(self.python), "-m", "cleancut", *args],
            input=stdin,
            capture_output=True,
            cwd=self.root,
            env=env,
            timeout=300,
        )
        return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")

    def info(self) -> dict[str, Any]:

        code, out, err = self.cleancut("info", "--json")
        assert code == 0, err
        report: dict[str, Any] = json.loads(out)
        return report

    def run_fix(self, fix: str) -> None:
        """The pip commands a message ends with, run as printed, except that the install
        reads the downloaded wheels (``--no-index --find-links``) and takes no dependencies
        (they are borrowed)."""

        for command in fix.split(" && "):
            argv = shlex.split(command)
            assert argv[:3] == [str(self.python), "-m", "pip"], command
            if argv[3] == "install":
                argv[4:4] = ["--no-index", "--find-links", str(WHEELS), "--no-deps"]
            subprocess.run(argv, check=True, capture_output=True, timeout=600)


def _fix_in(text: str) -> str:
    """The ``python -m pip … && python -m pip …`` a message ends with."""
    start = text.index(" -m pip uninstall")
    start = text.rindex(" ", 0, start) + 1
    return text[start:].strip().splitlines()[0]


def _nvidia_driver_present() -> bool:
    """Whether the NVIDIA driver library loads: without it no CUDA provider can ever start."""
    name = ctypes.util.find_library("cuda")
    if name is None:
        return False
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def test_two_onnxruntime_builds_are_found_and_the_printed_fix_works(
    ort_wheels: dict[str, Path], model_settings: Settings, tmp_path: Path
) -> None:
    """`pip install onnxruntime-gpu onnxruntime` (the second wins): the CUDA provider is gone
    from onnxruntime; `cleancut info` and `--device gpu` say why and print the commands, and
    those commands, run as printed, leave one build with the CUDA provider listed."""
    venv = ScratchVenv(tmp_path / "venv", ort_wheels)
    venv.install("onnxruntime-gpu", "onnxruntime")
    info = venv.info()
    assert sorted(d.split()[0] for d in info["onnxruntime_distributions"]) == [
        "onnxruntime",
        "onnxruntime-gpu",
    ]
    assert "CUDAExecutionProvider" not in info["available_providers"]  # the silent loss
    problem = info["onnxruntime_problem"]
    assert problem.startswith("2 onnxruntime distributions are installed together")
    fix = _fix_in(problem)
    assert fix.endswith(f"{venv.python} -m pip install onnxruntime-gpu")
    assert "uninstall -y" in fix and "onnxruntime-gpu" in fix.split("&&")[0] and " onnxruntime" in fix

    code, _, err = venv.cleancut(
        str(ASTRONAUT), "-o", str(tmp_path / "a.png"), "--device", "gpu", "--strict-device"
    )
    assert code == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "2 onnxruntime distributions" in errors[0] and fix in errors[0]
    assert not (tmp_path / "a.png").exists()
    code, _, err = venv.cleancut(str(ASTRONAUT), "-o", str(tmp_path / "b.png"), "--backend", "onnxruntime")
    assert code == 0, err  # auto still cuts, on the CPU, and warns with the same fix
    assert "WARNING" in err and fix in err
    # --device gpu with the backend left to choose (OpenVINO may take the CPU): said once too
    code, _, err = venv.cleancut(str(ASTRONAUT), "-o", str(tmp_path / "c.png"), "--device", "gpu")
    assert code == 0, err
    assert err.count(fix) == 1, err

    venv.run_fix(fix)
    info = venv.info()
    assert [d.split()[0] for d in info["onnxruntime_distributions"]] == ["onnxruntime-gpu"]
    assert info["onnxruntime_problem"] is None
    assert "CUDAExecutionProvider" in info["available_providers"]


def test_an_onnxruntime_emptied_by_an_uninstall_is_reported_with_the_fix(
    ort_wheels: dict[str, Path], model_settings: Settings, tmp_path: Path
) -> None:
    """Both builds, then `pip uninstall onnxruntime`: the package left behind has lost the
    shared files. Every command says so in one line with the reinstall, never a traceback."""
    venv = ScratchVenv(tmp_path / "venv", ort_wheels)
    venv.install("onnxruntime", "onnxruntime-gpu")
    venv.pip("uninstall", "-y", "onnxruntime")
    info = venv.info()
    assert info["onnxruntime"] == "broken" and info["available_providers"] == []
    problem = info["onnxruntime_problem"]
    assert problem.startswith("the onnxruntime package is broken")
    assert str(info["session"]).startswith("cannot start: the onnxruntime package is broken")
    code, _, err = venv.cleancut(str(ASTRONAUT), "-o", str(tmp_path / "a.png"))
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [f"error: {problem}"]
    venv.run_fix(_fix_in(problem))
    assert venv.info()["onnxruntime_problem"] is None


@pytest.mark.skipif(_nvidia_driver_present(), reason="an NVIDIA driver is installed: the provider may load")
def test_a_cuda_provider_that_does_not_load_says_what_to_install(
    ort_wheels: dict[str, Path], model_settings: Settings, tmp_path: Path
) -> None:
    """onnxruntime-gpu alone on a machine without CUDA: the provider is listed but fails to
    load. --device gpu falls back with a warning naming `onnxruntime-gpu[cuda,cudnn]`, stdout
    stays the image (onnxruntime prints its own fallback notes to stdout), strict fails."""
    venv = ScratchVenv(tmp_path / "venv", ort_wheels)
    venv.install("onnxruntime-gpu")
    want = f"{venv.python} -m pip install 'onnxruntime-gpu[cuda,cudnn]'"
    info = venv.info()
    assert info["onnxruntime_problem"] is None and "CUDAExecutionProvider" in info["available_providers"]
    assert info["session"]["provider"] == "CPUExecutionProvider"  # what really runs, and why:
    assert "did not load" in info["session"]["reason"] and want in info["session"]["reason"]
    code, out, err = venv.cleancut(
        "-", "--device", "gpu", "--backend", "onnxruntime", stdin=ASTRONAUT.read_bytes()
    )
    assert code == 0, err
    assert out.startswith(PNG_SIGNATURE), out[:80]
    assert "running on the CPU" in err and want in err and "did not load" in err
    code, out, err = venv.cleancut(
        str(ASTRONAUT), "-o", str(tmp_path / "a.png"), "--device", "gpu", "--strict-device"
    )
    assert code == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and want in errors[0] and "strict mode forbids the CPU fallback" in errors[0]
