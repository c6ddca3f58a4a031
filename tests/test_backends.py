"""backend="auto": the self-check, keyed by the prepared graph's content and the thread
count, each backend in a child process bounded in time, its verdict weighing memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleancut import Remover
from cleancut.inference import backends
from conftest import model_settings_for
from tinygraphs import make_graph

pytest.importorskip("openvino")


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    return model_settings_for(tmp_path / "cache", offline=True, npm="0")


def _records(settings) -> list[Path]:  # type: ignore[no-untyped-def]
    return sorted((settings.cache_dir / "backends").glob("*.json"))


def test_the_verdict_is_kept_per_graph_content_and_thread_count(tmp_path: Path, settings) -> None:
    graph = make_graph(tmp_path / "a.onnx", height=64, head="sigmoid")
    one = Remover(graph, model_family="isnet-imgly", device="cpu", threads=1, settings=settings).load()
    assert one.backend_reason and "self-check" in one.backend_reason
    (first,) = _records(settings)
    record = json.loads(first.read_text())
    assert record["identity"]["graph_sha256"] == one.prepared().sha256 and record["identity"]["threads"] == 1
    assert record["verified"] and record["onnxruntime_peak_rss"] > 0 and record["openvino_peak_rss"] > 0
    # the same graph under another name and path: the same content, the same verdict, no rerun
    copy = tmp_path / "b.onnx"
    copy.write_bytes(graph.read_bytes())
    mtime = first.stat().st_mtime_ns
    Remover(copy, model_family="isnet-imgly", device="cpu", threads=1, settings=settings).load()
    assert _records(settings) == [first] and first.stat().st_mtime_ns == mtime
    # another thread count is another key (measured once for it)
    Remover(graph, model_family="isnet-imgly", device="cpu", threads=2, settings=settings).load()
    assert len(_records(settings)) == 2


def test_a_backend_that_runs_too_long_is_not_chosen(
    tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "CHECK_TIMEOUT", 0.01)
    graph = make_graph(tmp_path / "slow.onnx", height=64, head="sigmoid")
    rem = Remover(graph, model_family="isnet-imgly", device="cpu", threads=1, settings=settings).load()
    assert rem.session.backend == "onnxruntime"
    assert rem.backend_reason is not None and "did not finish in 0 s" in rem.backend_reason
    # the verdict is kept: the next process does not wait again
    (record,) = _records(settings)
    assert "onnxruntime_error" in json.loads(record.read_text())


@pytest.mark.parametrize(
    ("ort", "ov", "choice"),
    [
        ((1.0, 2 << 30), (2.0, 1 << 30), "onnxruntime"),  # both fit: the faster
        ((1.0, 12 << 30), (1.5, 3 << 30), "openvino"),  # only OpenVINO fits in 4 GiB
        ((2.0, 1 << 30), (1.0, 6 << 30), "onnxruntime"),  # only onnxruntime fits
        ((2.0, 8 << 30), (1.0, 6 << 30), "openvino"),  # neither fits: faster and leaner
        ((1.0, 12 << 30), (1.2, 5 << 30), "openvino"),  # neither fits: the leaner, 1.2x slower
        ((1.0, 6 << 30), (2.0, 5 << 30), "onnxruntime"),  # the leaner is too slow
    ],
)
def test_auto_weighs_memory_as_well_as_speed(
    ort: tuple[float, int], ov: tuple[float, int], choice: str
) -> None:
    record = {
        "verified": True,
        "onnxruntime_s": ort[0],
        "onnxruntime_peak_rss": ort[1],
        "openvino_s": ov[0],
        "openvino_peak_rss": ov[1],
    }
    assert backends._weigh(record) == choice
    assert backends._weigh({**record, "verified": False}) == "onnxruntime"


def test_processes_that_start_together_measure_once(tmp_path: Path, settings) -> None:
    """Server workers or Ray actors starting at once: one runs the self-check, the others
    wait for its verdict (the check's onnxruntime child alone can peak at 12 GB)."""
    import subprocess
    import sys

    graph = make_graph(tmp_path / "c.onnx", height=64, head="sigmoid")
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, format='%(message)s');"
        "from cleancut import Remover, Settings;"
        "s = Settings.from_env(environ={}, cache_dir=sys.argv[2], offline=True, npm='0');"
        "r = Remover(sys.argv[1], model_family='isnet-imgly', device='cpu', threads=1, settings=s).load();"
        "print('CHOICE', r.session.backend)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(graph), str(settings.cache_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    measured = sum(err.count("measuring onnxruntime against OpenVINO") for _, err in outs)
    assert measured == 1, outs
    assert len({out.split("CHOICE")[-1].strip() for out, _ in outs}) == 1
