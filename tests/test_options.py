"""Every numeric edge and framing option is bounded once, in its dataclass's ``validate()``,
and refused alike by the library (``InvalidOptionError``), the CLI (exit 2, one ``error:``
line naming the flag) and the HTTP API (422 JSON); the framed canvas obeys the pixel limit
(``ImageTooLargeError``, 413) whatever the padding, margin, square and size cap (issue 12).

The refusals happen before any model run; the canvas and the accepted extremes need the real
model, on small photos (a handful of passes, about a second each).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import cleancut
from cleancut import ImageTooLargeError, InvalidOptionError, Settings, remove_background
from cleancut.api import edge_options
from cleancut.cli import cli
from cleancut.framing import make_framing
from fuzz_strategies import pil_image

EDGE = ("threshold", "feather", "min_island", "min_hole")

#: (option, the value as the library takes it, as text, a fragment of the one message)
OUT_OF_RANGE: list[tuple[str, Any, str, str]] = [
    ("threshold", -1, "-1", "threshold must be an integer 0..255"),
    ("threshold", 256, "256", "threshold must be an integer 0..255"),
    ("threshold", 2**70, str(2**70), "threshold must be an integer 0..255"),
    ("feather", -1e-9, "-1e-09", "0 ≤ feather ≤ 500"),
    ("feather", 500.0001, "500.0001", "0 ≤ feather ≤ 500"),
    ("feather", 1e9, "1e9", "0 ≤ feather ≤ 500"),  # 18 GB and minutes of CPU on the server
    ("feather", 1e6, "1e6", "0 ≤ feather ≤ 500"),  # "std::bad_array_new_length" in the CLI
    ("feather", math.nan, "nan", "0 ≤ feather ≤ 500"),
    ("feather", math.inf, "inf", "0 ≤ feather ≤ 500"),
    ("feather", -math.inf, "-inf", "0 ≤ feather ≤ 500"),
    ("min_island", -1e-300, "-1e-300", "0 ≤ min_island < 1"),
    ("min_island", 1.0, "1", "0 ≤ min_island < 1"),
    ("min_island", math.nan, "NaN", "0 ≤ min_island < 1"),
    ("min_hole", 1.0000001, "1.0000001", "0 ≤ min_hole < 1"),
    ("min_hole", math.inf, "Infinity", "0 ≤ min_hole < 1"),
    ("blur", 0.0, "0", "blur must be a number in (0, 0.25]"),
    ("blur", -0.1, "-0.1", "blur must be a number in (0, 0.25]"),
    ("blur", 0.2500001, "0.2500001", "blur must be a number in (0, 0.25]"),
    ("blur", math.nan, "nan", "blur must be a number in (0, 0.25]"),
    ("margin", -1e-9, "-1e-9", "margin must be a number in [0, 10]"),
    ("margin", 10.000001, "10.000001", "margin must be a number in [0, 10]"),
    ("margin", 1e308, "1e308", "margin must be a number in [0, 10]"),
    ("margin", math.inf, "inf", "margin must be a number in [0, 10]"),
    ("padding", -1e-9, "-1e-9", "padding must be a number in [0, 0.5)"),
    ("padding", 0.5, "0.5", "padding must be a number in [0, 0.5)"),
    ("padding", 0.5 - 1e-17, "0.49999999999999999", "padding must be a number in [0, 0.5)"),
    ("padding", math.nan, "nan", "padding must be a number in [0, 0.5)"),
    ("max_size", 0, "0", "max_size must be a positive number of pixels, at most 65535"),
    ("max_size", -5, "-5", "max_size must be a positive number of pixels, at most 65535"),
    ("max_size", 65536, "65536", "max_size must be a positive number of pixels, at most 65535"),
    ("max_size", 10**30, str(10**30), "max_size must be a positive number of pixels, at most 65535"),
]
IDS = [f"{name}={text}" for name, _, text, _ in OUT_OF_RANGE]


def small_photo(w: int = 64, h: int = 48) -> bytes:
    buf = io.BytesIO()
    pil_image("RGB", w, h).save(buf, "PNG")
    return buf.getvalue()


def library_refusal(name: str, value: Any) -> str:
    with pytest.raises(InvalidOptionError) as info:
        if name in EDGE:
            edge_options(**{name: value})
        else:
            make_framing(**{name: value})
    return str(info.value)


@pytest.mark.parametrize(("name", "value", "text", "fragment"), OUT_OF_RANGE, ids=IDS)
def test_the_library_refuses_before_inference(
    name: str, value: Any, text: str, fragment: str, model_settings: Settings
) -> None:
    assert fragment in library_refusal(name, value)
    events: list[str] = []
    with pytest.raises(InvalidOptionError, match=name):
        remove_background(
            small_photo(), settings=model_settings, progress=lambda k, c, t: events.append(k), **{name: value}
        )
    assert not [e for e in events if e.startswith("compute:")]  # nothing ran


def cli_run(*args: object, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.mark.parametrize(("name", "value", "text", "fragment"), OUT_OF_RANGE, ids=IDS)
def test_the_cli_refuses_with_a_usage_error(
    name: str, value: Any, text: str, fragment: str, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(small_photo())
    result = cli_run("remove", photo, f"--{name.replace('_', '-')}={text}", "-o", tmp_path / "out.png")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    flag = f"--{name.replace('_', '-')}"
    assert errors[0].startswith(f"error: {flag}: {name}")
    assert fragment in errors[0]
    # the same sentence as the library's (the value as parsed: 1e6 → 1000000.0)
    parsed: Any = int(text) if name in ("threshold", "max_size") else float(text)
    assert errors[0] == f"error: {flag}: {library_refusal(name, parsed)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]  # nothing written


@pytest.fixture(scope="module")
def http(model_settings: Settings) -> Iterator[Any]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from cleancut.server import ServerSettings, create_app

    app = create_app(
        ServerSettings(core=model_settings, load_in_background=False, browser=False, max_pixels=1_000_000)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def post(client: Any, query: dict[str, str], data: bytes | None = None) -> Any:
    return client.post(
        "/api/remove", content=data or small_photo(), headers={"Content-Type": "image/png"}, params=query
    )


@pytest.mark.parametrize(("name", "value", "text", "fragment"), OUT_OF_RANGE, ids=IDS)
def test_http_refuses_with_422(name: str, value: Any, text: str, fragment: str, http: Any) -> None:
    r = post(http, {name: text})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_option" and fragment in body["detail"]
    parsed: Any = int(text) if name in ("threshold", "max_size") else float(text)
    assert body["detail"] == library_refusal(name, parsed)


def test_unparsable_numbers_are_refused_everywhere(http: Any, tmp_path: Path) -> None:
    r = post(http, {"max_size": "9" * 5000})  # more digits than int() takes
    assert r.status_code == 422 and "max_size must be a whole number" in r.json()["detail"]
    assert len(r.json()["detail"]) < 200
    r = post(http, {"feather": "1e400"})  # float("1e400") is inf
    assert r.status_code == 422 and "0 ≤ feather ≤ 500" in r.json()["detail"]
    photo = tmp_path / "p.png"
    photo.write_bytes(small_photo())
    result = cli_run("remove", photo, "--threshold", "nan")
    assert result.exit_code == 2 and "--threshold" in result.stderr


# --------------------------------------------------------------------------- the canvas


def test_http_canvas_over_the_limit_is_413_naming_it(http: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's request: padding 0.49 on a small upload made a 2 GB rgba8 body (6.7 GB
    peak); 0.49999999 was a 500. Now a 413 naming the server's limit, quoting the padding
    exactly as sent (issue 24: "lower padding 0.5"), before any inference."""
    from cleancut.server.engine import Engine

    def no_inference(*_a: object, **_k: object) -> None:
        raise AssertionError("inferred")

    monkeypatch.setattr(Engine, "_infer", no_inference)
    for padding in ("0.49", "0.49999999"):
        r = post(http, {"padding": padding, "square": "true", "format": "rgba8"})
        assert r.status_code == 413, r.text[:300]
        body = r.json()
        assert body["error"] == "image_too_large"
        assert "over the pixel limit of 1,000,000 (max_pixels)" in body["detail"]
        assert f"lower padding {padding}, set max_size, or raise max_pixels" in body["detail"], body
        assert "now None" not in body["detail"]


def test_http_extremes_in_range_give_a_valid_output(http: Any) -> None:
    """The bounds themselves are usable: padding just under 0.5 with a size cap (the canvas
    made at the capped size), margin 10, the widest blur, feather and thresholds."""
    r = post(
        http,
        {
            "padding": "0.4999",
            "crop": "true",
            "margin": "10",
            "max_size": "100",
            "background": "blur",
            "blur": "0.25",
            "shadow": "true",
            "feather": "500",
            "min_island": "0.999999",
            "min_hole": "0.999999",
            "threshold": "255",
        },
    )
    assert r.status_code == 200, r.text[:300]
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (100, 100) == (int(r.headers["x-image-width"]), int(r.headers["x-image-height"]))


def test_cli_canvas_over_the_limit_is_a_clear_error(tmp_path: Path, model_settings: Settings) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(small_photo())
    out = tmp_path / "out.png"
    env = {"CLEANCUT_CACHE_DIR": str(model_settings.cache_dir), "CLEANCUT_OFFLINE": "1"}
    result = CliRunner().invoke(
        cli,
        ["remove", str(photo), "-o", str(out), "--padding", "0.49999999", "--max-pixels", "5000000"],
        env=env,
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert "over the pixel limit of 5,000,000 (max_pixels)" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]  # nothing partial
    # under the limit with a size cap: written, at the capped size
    result = CliRunner().invoke(
        cli,
        ["remove", str(photo), "-o", str(out), "--padding", "0.4999", "--max-size", "80", "--feather", "500"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (80, 80)


def test_library_canvas_obeys_the_settings_limit(model_settings: Settings) -> None:
    tight = model_settings.with_(max_pixels=100_000)
    assert remove_background(small_photo(), settings=tight, padding=0.3).size == (160, 160)  # 25,600 px
    with pytest.raises(ImageTooLargeError, match="over the pixel limit of 100,000"):
        remove_background(small_photo(), settings=tight, padding=0.45)  # 640² px
    cut = remove_background(small_photo(), settings=tight, padding=0.45, max_size=200)
    assert cut.size == (200, 200) and cut.pixels.dtype == np.uint8
    assert isinstance(cleancut.ImageTooLargeError("x"), cleancut.ImageError)
