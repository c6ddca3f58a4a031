"""The GPU path: batched inference with I/O binding on CUDA / TensorRT.

Runs only where onnxruntime has a GPU provider (onnxruntime-gpu in place of onnxruntime on a
CUDA machine: README, GPU); elsewhere each test is skipped with the reason. The dynamic-batch
graph that the GPU path loads is checked on the CPU too, since its correctness does not need a
GPU, and so is the install check (two onnxruntime builds at once, a CUDA provider that does not
load) in scratch venvs with the real onnxruntime-gpu wheel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cleancut import Remover, Settings
from cleancut.batch import OutputOptions, plan_jobs, run_jobs
from cleancut.inference.runtime import create_onnxruntime_session, gpu_providers_present
from cleancut.io.decode import decode
from cleancut.models import MODELS
from cleancut.models.graph import prepare
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
