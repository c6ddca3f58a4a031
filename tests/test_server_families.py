"""``cleancut serve -m PATH --model-family NAME``: a model file of your own through the server.

A tiny birefnet-family graph (tests/tinygraphs.py: logits that are a known linear function of
the channels) is loaded as a custom model: ``/api/models`` and ``/api/config`` list it with its
family and recipe, a request picks it by its key and gets the family's mask value on a flat
photo, and bad custom models are refused at start-up (exit 2, one line, before binding).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'cleancut[server]'")

from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from cleancut.cli import cli
from cleancut.config import Settings
from cleancut.errors import InvalidOptionError, ModelNotFoundError
from cleancut.models import MODELS
from cleancut.server import ServerSettings, create_app
from conftest import model_settings_for
from tinygraphs import REFERENCES, expected_value, flat_photo, make_graph

#: a colour whose normalised channels differ (as in test_families)
RGB = (250, 10, 60)


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return model_settings_for(tmp_path_factory.mktemp("cache"), offline=True, npm="0")


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_graph(tmp_path_factory.mktemp("graphs") / "tiny-birefnet.onnx", height=64, extra_outputs=2)


@pytest.fixture(scope="module")
def client(core: Settings, graph: Path) -> Iterator[TestClient]:
    settings = ServerSettings(
        models=(str(graph),), model_family="birefnet", core=core, browser=False,
        backend="onnxruntime", load_in_background=False,
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        yield c


def png(rgb: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(flat_photo(rgb, 60, 80)).save(buf, "PNG")
    return buf.getvalue()


def test_a_custom_model_is_listed_with_its_family(client: TestClient, graph: Path) -> None:
    body = client.get("/api/models").json()
    assert body["default"] == "tiny-birefnet"
    by_name = {m["name"]: m for m in body["models"]}
    mine = by_name["tiny-birefnet"]
    assert mine["custom"] and mine["loaded"] and mine["ready"] and mine["default"]
    assert mine["family"] == "birefnet" and mine["input_size"] == {"height": 64, "width": 64}
    assert mine["source"] == str(graph.resolve())
    assert not mine["browser"]  # this server was started without the in-browser engine
    # the published models are listed too, with family, download size and licence
    lite = by_name["birefnet-general-lite"]
    assert lite["family"] == "birefnet" and lite["size"] == 224_005_088 and lite["license"] == "MIT"
    assert not lite["loaded"] and by_name["bria-rmbg-2.0"]["noncommercial"]
    config = client.get("/api/config").json()
    recipe = config["browser"]["models"]["tiny-birefnet"]["recipe"]
    assert recipe["family"] == "birefnet" and recipe["activation"] == "sigmoid"
    assert recipe["height"] == recipe["width"] == 64 and recipe["downsample"] == "pil-bilinear"
    assert config["browser"]["state"] == "unavailable"


def test_a_model_file_over_the_browser_limit_is_server_only(
    core: Settings, graph: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cleancut.server import browser_models, state

    monkeypatch.setattr(state, "BROWSER_MAX_BYTES", 100)  # the tiny graph is ~600 bytes
    settings = ServerSettings(
        models=(str(graph),), model_family="birefnet", core=core, load_in_background=False
    )
    with TestClient(create_app(settings)) as c:
        mine = {m["name"]: m for m in c.get("/api/models").json()["models"]}["tiny-birefnet"]
        assert not mine["browser"] and "runs on the server" in mine["browser_detail"]
        config = c.get("/api/config").json()
        assert config["browser"]["state"] == "unavailable" and "over the 0 MB" in config["browser"]["detail"]
        assert config["browser"]["models"]["tiny-birefnet"]["browser"] is False
        assert c.get("/models/resources.json").status_code == 404
    # IS-Net's graphs fit; BiRefNet lite's 224 MB ran out of WebAssembly memory in Chromium
    isnet, lite = MODELS["isnet-general-use"].size, MODELS["birefnet-general-lite"].size
    assert isnet is not None and lite is not None
    assert isnet <= browser_models.BROWSER_MAX_BYTES < lite


def test_a_request_picks_the_custom_model_and_gets_its_mask(client: TestClient) -> None:
    want = 255 * expected_value(REFERENCES["birefnet"], RGB, "logits")
    for query in ("", "?model=tiny-birefnet", "?model=TINY_birefnet"):
        r = client.post(f"/api/remove{query}&format=alpha8".replace("&", "?", not query),
                        content=png(RGB), headers={"Content-Type": "image/png"})  # fmt: skip
        assert r.status_code == 200, r.text
        mask = np.frombuffer(r.content, np.uint8)
        assert mask.size == 60 * 80 and abs(float(np.median(mask)) - want) <= 1.5


@pytest.mark.parametrize(
    ("model", "fragment"),
    [("isnet_fp16", "not loaded"), ("medium", "not loaded"), ("/etc/passwd", "unknown model"),
     ("./tiny-birefnet.onnx", "unknown model")],
)  # fmt: skip
def test_a_model_that_is_not_loaded_is_422(client: TestClient, model: str, fragment: str) -> None:
    r = client.post(
        "/api/remove", params={"model": model}, content=png(RGB), headers={"Content-Type": "image/png"}
    )
    assert r.status_code == 422 and fragment in r.json()["detail"]


def test_keys_are_unique_and_never_a_published_name(core: Settings, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_graph(tmp_path / "a" / "x.onnx", height=32)
    b = make_graph(tmp_path / "b" / "x.onnx", height=32)
    medium = make_graph(tmp_path / "medium.onnx", height=32)
    s = ServerSettings(
        models=("isnet_fp16", str(a), str(b), str(medium), str(a)), model_family="birefnet", core=core
    )
    assert s.models == ("isnet_fp16", "x", "x-2", "medium-2")
    assert s.spec("x").path == a.resolve() and s.spec("x-2").family == "birefnet"
    assert s.with_(workers=2).models == s.models  # a copy keeps its keys


def test_family_and_checksum_rules(core: Settings, tmp_path: Path) -> None:
    a, b = make_graph(tmp_path / "a.onnx", height=32), make_graph(tmp_path / "b.onnx", height=32)
    with pytest.raises(InvalidOptionError, match="pins one file"):
        ServerSettings(models=(str(a), str(b)), model_sha256="0" * 64, core=core)
    with pytest.raises(InvalidOptionError, match="applies to a model file or URL of your own"):
        ServerSettings(models=("isnet_fp16",), model_family="birefnet", core=core)
    with pytest.raises(ModelNotFoundError, match="no such model file"):
        ServerSettings(models=(str(tmp_path / "missing.onnx"),), model_family="birefnet", core=core)


def _serve(args: list[str], core: Settings) -> tuple[int, str]:
    env = {"CLEANCUT_CACHE_DIR": str(core.cache_dir), "CLEANCUT_OFFLINE": "1"}
    result = CliRunner().invoke(cli, ["serve", "--port", "1", *args], env=env)
    return result.exit_code, result.output


@pytest.mark.parametrize("case", ["missing", "no-family", "wrong-checksum", "wrong-shape", "two-checksums"])
def test_a_bad_custom_model_stops_serve_before_it_binds(core: Settings, tmp_path: Path, case: str) -> None:
    good = make_graph(tmp_path / "good.onnx", height=32)
    args = {
        "missing": ["-m", str(tmp_path / "nope.onnx"), "--model-family", "birefnet"],
        "no-family": ["-m", str(good)],
        "wrong-checksum": ["-m", str(good), "--model-family", "birefnet", "--model-sha256", "ab" * 32],
        "wrong-shape": ["-m", str(make_graph(tmp_path / "two.onnx", height=32, channels=2)),
                        "--model-family", "birefnet"],
        "two-checksums": ["-m", f"{good},{make_graph(tmp_path / 'b.onnx', height=32)}",
                          "--model-family", "birefnet", "--model-sha256", "ab" * 32],
    }[case]  # fmt: skip
    code, output = _serve(args, core)
    # port 1 is never bound here: had the check come after binding, the error would be uvicorn's
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, output
    fragment = {"missing": "no such model file", "no-family": "which family", "wrong-checksum": "sha-256",
                "wrong-shape": "3 channels", "two-checksums": "pins one file"}[case]  # fmt: skip
    assert fragment in errors[0].lower(), errors[0]


def test_a_url_model_that_cannot_be_fetched_is_a_readyz_failure(core: Settings, graph: Path) -> None:
    """What needs the network loads after the start: offline and not cached, a custom URL
    fails /readyz with the message (naming the model), while the other model still lists."""
    settings = ServerSettings(
        models=(str(graph), "https://models.example/other.onnx"),
        model_family="birefnet",
        core=core,
        browser=False,
        load_in_background=False,
    )
    assert settings.models == ("tiny-birefnet", "other")
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["error"] == "model_unavailable"
        assert "loaded: other: other.onnx is not in the cache" in r.json()["detail"]
        names = [m["name"] for m in c.get("/api/models").json()["models"]]
        assert "other" in names and "tiny-birefnet" in names
