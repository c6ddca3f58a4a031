"""A fast, derandomised slice of the fuzzing campaign (``fuzz/run.py`` runs the full one).

The same generators and judges as the campaign (``tests/fuzz_strategies.py``): damaged and
crafted image files, odd modes, arrays and objects, odd options; each must end in a correct
result or in cleancut's clear error — never another exception, a traceback, a 500 or a
wrong result. Decodable inputs reach the real model only a few times per target (each pass
costs about a second); after that the CLI and the server are driven with a pixel limit of 1,
which still runs their whole path except the network. Examples are time-boxed by
Hypothesis's deadline (and the suite's timeout), and the process's memory may not grow by
more than :data:`RSS_GROWTH_MB` over the whole module.

Every edge and framing option is fuzzed (issue 12), at its extremes (0, negative, tiny,
huge, NaN, infinities, each bound and a hair either side): through the library's flat
keywords (typed: floats, huge integers, bools, strings; real runs while the budget lasts,
then the stages after the network on a synthetic network output), and as text through the
CLI and HTTP (real runs on 16–200 px photos while their budget lasts).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_strategies as fz
from cleancut import Remover, Settings
from cleancut.io.decode import decode

FAST = settings(
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


#: Real model passes per target (each about a second); later decodable inputs go elsewhere.
LIBRARY_BUDGET = fz.Budget(3)
OPTIONS_BUDGET = fz.Budget(4)
CLI_BUDGET = fz.Budget(2)
HTTP_BUDGET = fz.Budget(3)

#: How much the process's RSS may grow over this module (a model session is already loaded
#: by the session fixture; a canvas blow-up is gigabytes).
RSS_GROWTH_MB = 1500
_BASELINE: list[int] = []


def _assert_memory_bounded() -> None:
    rss = psutil.Process().memory_info().rss
    if not _BASELINE:
        _BASELINE.append(rss)
    growth = (rss - _BASELINE[0]) / 2**20
    assert growth < RSS_GROWTH_MB, f"RSS grew by {growth:.0f} MB"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _assert_clean(case: fz.Case, verdict: fz.Verdict) -> None:
    assert verdict.outcome != "failure", f"{case.label}: {verdict.detail}"
    _assert_memory_bounded()


@settings(FAST, max_examples=400)
@given(case=fz.as_stream_or_path(fz.image_bytes()))
def test_decoder(case: fz.Case, work: Path) -> None:
    _assert_clean(case, fz.judge_decode(case, work))


@settings(FAST, max_examples=120)
@given(case=fz.library_inputs(), fmt=st.sampled_from(["png", "webp", "jpeg", "rgba8", "alpha8"]))
def test_library(case: fz.Case, fmt: str, remover: Remover, work: Path) -> None:
    _assert_clean(case, fz.judge_library(remover, case, work, LIBRARY_BUDGET, fmt))


@settings(FAST, max_examples=150)
@given(
    case=st.one_of(fz.photo_bytes(), fz.photo_bytes(), fz.image_bytes()),
    options=fz.library_option_sets(),
    out_type=st.sampled_from(fz.OPTION_TYPES),
    fmt=st.sampled_from(["png", "webp", "jpeg", "rgba8", "alpha8"]),
    seed=st.integers(0, 2**16),
)
def test_library_options(
    case: fz.Case,
    options: dict[str, Any],
    out_type: str,
    fmt: str,
    seed: int,
    remover: Remover,
    work: Path,
) -> None:
    verdict = fz.judge_options(remover, case, options, out_type, fmt, work, OPTIONS_BUDGET, seed)
    _assert_clean(case, verdict)


def _decodable(data: bytes | None) -> bool:
    try:
        decode(data or b"", max_pixels=100_000_000)
    except Exception:
        return False
    return True


@settings(FAST, max_examples=60)
@given(case=st.one_of(fz.image_bytes(), fz.photo_bytes()), options=fz.option_sets(), stdin=st.booleans())
def test_cli(
    case: fz.Case, options: dict[str, str], stdin: bool, model_settings: Settings, work: Path
) -> None:
    from click.testing import CliRunner

    from cleancut.cli import cli

    assert case.data is not None
    env = {"CLEANCUT_CACHE_DIR": str(model_settings.cache_dir), "CLEANCUT_OFFLINE": "1"}
    out = work / "cli-out.png"
    out.unlink(missing_ok=True)
    args = ["remove", *fz.cli_args_for(options)]
    if _decodable(case.data) and not CLI_BUDGET.take():
        args += ["--max-pixels", "1"]
    runner = CliRunner()
    if stdin:
        result = runner.invoke(cli, [*args, "-", "-o", str(out)], input=case.data, env=env)
    else:
        src = work / "cli-in.jpg"
        src.write_bytes(case.data)
        result = runner.invoke(cli, [*args, str(src), "-o", str(out)], env=env)
    fmt = options.get("format", "png").strip().lower()
    _assert_clean(case, fz.judge_cli_result(result, out, expect_image=fmt in ("png", "webp", "jpeg", "jpg")))


@pytest.fixture(scope="module")
def http_clients(model_settings: Settings) -> Iterator[tuple[Any, Any]]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from cleancut.server import ServerSettings, create_app

    def app(**kw: Any) -> Any:
        return create_app(ServerSettings(core=model_settings, load_in_background=False, browser=False, **kw))

    with (
        TestClient(app(), raise_server_exceptions=False) as full,
        TestClient(app(max_pixels=1), raise_server_exceptions=False) as tiny,
    ):
        yield full, tiny


@settings(FAST, max_examples=80)
@given(
    case=st.one_of(fz.image_bytes(), fz.photo_bytes()),
    options=fz.option_sets(),
    shape=st.sampled_from(["raw", "form", "form-query"]),
    ctype=st.sampled_from(["image/jpeg", "application/octet-stream", "image/x-anything", "text/plain"]),
)
def test_http(
    case: fz.Case, options: dict[str, str], shape: str, ctype: str, http_clients: tuple[Any, Any]
) -> None:
    full, tiny = http_clients
    client = tiny if _decodable(case.data) and not HTTP_BUDGET.take() else full
    if shape == "raw":
        r = client.post("/api/remove", content=case.data, headers={"Content-Type": ctype}, params=options)
    elif shape == "form":
        r = client.post("/api/remove", files={"file": ("x.jpg", case.data, ctype)}, data=options)
    else:
        r = client.post("/api/remove", files={"file": ("x.jpg", case.data, ctype)}, params=options)
    _assert_clean(case, fz.judge_http_response(r))


VIDEO_BUDGET = fz.Budget(3)


@pytest.fixture(scope="module")
def clip_removers(remover: Remover, model_settings: Settings) -> tuple[Remover, Remover]:
    """The shared session, and one whose pixel limit of 1 refuses every frame before the
    network (the whole video path but the model)."""
    tiny = Remover("isnet_fp16", settings=Settings.from_env(environ={}, cache_dir=model_settings.cache_dir,
                                                            offline=True, max_pixels=1))  # fmt: skip
    return remover, tiny


@settings(FAST, max_examples=30)
@given(case=fz.clip_bytes(), options=fz.clip_options(), output=st.sampled_from(fz.CLIP_OUTPUTS))
def test_video(
    case: fz.Case, options: dict[str, Any], output: str, clip_removers: tuple[Remover, Remover], work: Path
) -> None:
    pytest.importorskip("av")
    full, tiny = clip_removers
    remover = full if fz.clip_opens(case, work) and VIDEO_BUDGET.take() else tiny
    _assert_clean(case, fz.judge_clip(remover, case, options, output, work))


def test_the_fuzzers_reach_every_option() -> None:
    """Every option of the table is drawn by the fuzz strategies: the HTTP/CLI text options
    and the library's keywords (but the engine placement ones: device, backend, strict and
    threads pick hardware, and fuzzing them only re-tests the self-check). Before this test
    ``mode`` and ``model`` were missing, and ``--model small --mode fast`` failed every photo."""
    from cleancut.options import options_for

    assert {o.name for o in options_for("http")} == set(fz.OPTION_VALUES)
    placement = {"device", "backend", "strict", "threads"}
    assert {o.name for o in options_for("library")} - placement == set(fz.LIBRARY_OPTIONS)
