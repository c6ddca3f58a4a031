"""The fronts agree (issue 13): the CLI's ``cleancut remove`` flags, the OpenAPI parameters,
the HTTP parser and the library's keywords offer the options of the one table,
:func:`cleancut.options.OPTIONS`, with its names, defaults, choices and bounds; the bounds
are those that ``EdgeOptions.validate()`` / ``Framing.validate()`` enforce. A front that
gains an option the table (and so the other fronts) lacks fails here.

No model runs: everything is checked before any inference.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

import click
import numpy as np
import pytest

from cleancut import api
from cleancut.api import edge_options
from cleancut.cli import remove_cmd
from cleancut.edges import EdgeOptions
from cleancut.errors import InvalidOptionError
from cleancut.framing import Framing, make_framing
from cleancut.options import CLIP_OPTIONS, OPTIONS, CutOptions, EngineOptions, Option, options_for
from cleancut.server.options import OPTION_NAMES, openapi_parameters, parse_options

#: ``cleancut remove`` flags about the run, not the cut-out or the engine: where the inputs
#: and outputs are, Ray, settings (cache, limits), verbosity.
CLI_RUN_PARAMS = {
    "inputs", "output", "overwrite", "quiet", "engine", "address", "num_workers",
    "cache_dir", "model_url", "offline", "max_pixels", "accept_noncommercial",
}  # fmt: skip
#: Library keywords that are not options: the image, the settings object, callbacks.
LIBRARY_OTHER = {"image", "settings", "progress", "cancel"}
LIBRARY_FUNCTIONS = [api.remove_background, api.remove_foreground, api.segment_foreground]


def names(front: str) -> list[str]:
    return [o.name for o in options_for(front)]  # type: ignore[arg-type]


def test_the_table_names_each_option_once() -> None:
    all_names = [o.name for o in OPTIONS()]
    assert len(all_names) == len(set(all_names))
    for option in OPTIONS():
        assert option.help and option.fronts, option.name
        assert (option.choices is not None) == (option.kind == "choice"), option.name
        if option.choices is not None and option.default is not None:
            assert option.default in option.choices, option.name


# --------------------------------------------------------------------------- the HTTP API


def test_the_http_parser_takes_the_tables_names() -> None:
    assert list(OPTION_NAMES) == names("http")
    with pytest.raises(InvalidOptionError, match="unknown option 'device'"):
        parse_options({"device": "cpu"}, models=["isnet_fp16"])


def test_openapi_parameters_are_made_from_the_table() -> None:
    params = {p["name"]: p for p in openapi_parameters(["isnet_fp16", "isnet_quint8"])}
    assert list(params) == names("http")
    for option in options_for("http"):
        schema = params[option.name]["schema"]
        assert params[option.name]["description"].startswith(option.help_for("http")), option.name
        if option.name == "model":  # the loaded models, the first the default
            assert schema["enum"] == ["isnet_fp16", "isnet_quint8"] and schema["default"] == "isnet_fp16"
            continue
        assert schema.get("enum") == (list(option.choices) if option.choices else None), option.name
        assert schema.get("default") == option.default, option.name
        low = "exclusiveMinimum" if option.exclusive_minimum else "minimum"
        high = "exclusiveMaximum" if option.exclusive_maximum else "maximum"
        assert schema.get(low) == option.minimum, option.name
        assert schema.get(high) == option.maximum, option.name


# --------------------------------------------------------------------------- the CLI


def cli_params() -> dict[str, click.Parameter]:
    return {p.name: p for p in remove_cmd.params if p.name is not None}


def test_cli_remove_flags_are_the_table() -> None:
    params = cli_params()
    by_flag = {opt: p for p in params.values() for opt in [*p.opts, *p.secondary_opts]}
    seen = set()
    for option in options_for("cli"):
        param = by_flag.get(option.flag)
        assert param is not None, f"cleancut remove has no {option.flag}"
        seen.add(param.name)
        if option.choices is not None:
            assert isinstance(param.type, click.Choice), option.name
            assert list(param.type.choices) == list(option.choices), option.name
        elif option.kind == "bool":
            assert param.is_bool_flag if isinstance(param, click.Option) else False, option.name
        else:
            expected = {"int": click.INT, "float": click.FLOAT, "text": click.STRING}[option.kind]
            kind = param.type
            if isinstance(kind, click.types._NumberRangeBase):  # bounds checked by click
                assert kind.min == option.minimum and kind.max == option.maximum, option.name
                kind = click.INT if isinstance(kind, click.IntRange) else click.FLOAT
            assert kind == expected, option.name
        # not given (None: the dataclass default stays) or the table's default
        default = param.get_default(click.Context(remove_cmd), call=False)
        assert default in (None, option.default), option.name
    seen |= {o.name for o in CLIP_OPTIONS}  # checked by test_clip_options_agree
    unknown = set(params) - seen - CLI_RUN_PARAMS
    assert not unknown, f"cleancut remove options missing from the table: {sorted(unknown)}"


def test_clip_options_agree() -> None:
    """The clip-only options (``smooth``): the same name, default and help on the command
    line, in ``POST /api/remove-video`` and as keywords of ``remove_video``/``cut_frames``;
    the photo fronts never offer them."""
    pytest.importorskip("av")
    from cleancut.server.options import VIDEO_OPTION_NAMES, openapi_video_parameters, parse_video_options
    from cleancut.video import cut_frames, remove_video

    params = cli_params()
    http = {p["name"]: p for p in openapi_video_parameters(["isnet_fp16"])}
    for option in CLIP_OPTIONS:
        assert option.name not in {o.name for o in OPTIONS()} and option.name not in OPTION_NAMES
        assert option.kind == "bool"
        param = params[option.name]
        assert isinstance(param, click.Option) and param.default == option.default
        assert param.secondary_opts == [f"--no-{option.flag[2:]}"] and option.help in (param.help or "")
        assert option.name in VIDEO_OPTION_NAMES
        assert http[option.name]["schema"] == {"type": "boolean", "default": option.default}
        assert http[option.name]["description"].startswith(option.help_for("http"))
        assert getattr(parse_video_options({}, models=["isnet_fp16"]), option.name) == option.default
        flipped = parse_video_options({option.name: str(not option.default).lower()}, models=["isnet_fp16"])
        assert getattr(flipped, option.name) is (not option.default)
        for function in (remove_video, cut_frames):
            assert inspect.signature(function).parameters[option.name].default == option.default


# --------------------------------------------------------------------------- the library


@pytest.mark.parametrize("function", LIBRARY_FUNCTIONS, ids=lambda f: f.__name__)
def test_library_keywords_are_the_table(function: Any) -> None:
    signature = inspect.signature(function)
    keywords = [n for n in signature.parameters if n not in LIBRARY_OTHER]
    assert sorted(keywords) == sorted(names("library"))  # keyword-only: the order is free
    for option in options_for("library"):
        default = signature.parameters[option.name].default
        assert default in (None, option.default), option.name


# --------------------------------------------------------------------------- defaults and bounds


def test_defaults_are_the_dataclasses() -> None:
    edges = EdgeOptions()
    framing = Framing()
    cut = CutOptions()
    engine = EngineOptions()
    for option in OPTIONS():
        if option.group == "edges":
            assert getattr(edges, option.name) == option.default, option.name
        elif option.group == "framing" and option.name not in ("background", "preset"):
            assert getattr(framing, option.name) == option.default, option.name
        elif option.group == "output":
            assert getattr(cut, option.name) == option.default, option.name
        elif option.group == "engine":
            assert getattr(engine, option.name) == option.default, option.name
    assert {f.name for f in dataclasses.fields(EngineOptions)} == {
        o.name for o in OPTIONS() if o.group == "engine"
    }


def _refused(option: Option, value: float) -> bool:
    value = int(value) if option.kind == "int" else value
    try:
        if option.group == "edges":
            edge_options(**{option.name: value})
        else:
            make_framing(**{option.name: value})
    except InvalidOptionError:
        return True
    return False


BOUNDED = [o for o in OPTIONS() if o.group in ("edges", "framing") and o.kind in ("int", "float")]


@pytest.mark.parametrize("option", BOUNDED, ids=lambda o: o.name)
def test_the_tables_bounds_are_the_ones_validate_checks(option: Option) -> None:
    assert option.minimum is not None and option.maximum is not None, option.name
    step = 1.0 if option.kind == "int" else None

    def below(x: float) -> float:
        return x - 1 if step else math.nextafter(x, -math.inf)

    def above(x: float) -> float:
        return x + 1 if step else math.nextafter(x, math.inf)

    assert _refused(option, option.minimum) == option.exclusive_minimum
    assert _refused(option, below(option.minimum))
    assert _refused(option, option.maximum) == option.exclusive_maximum
    assert _refused(option, above(option.maximum))
    assert not _refused(option, (option.minimum + option.maximum) / 2 if not step else option.maximum)


def test_help_texts_name_the_bounds() -> None:
    for option in BOUNDED:
        if option.name in ("threshold",):  # its metavar, 0..255, says it
            assert option.metavar == "0..255"
            continue
        assert f"{option.maximum:g}" in option.help, option.name


# --------------------------------------------------------------------------- the one options type


def test_remover_cut_takes_the_one_options_type(remover: Any) -> None:
    import io

    import numpy as np

    from cleancut import stages
    from fuzz_strategies import pil_image

    buf = io.BytesIO()
    pil_image("RGB", 64, 48).save(buf, "PNG")
    photo = buf.getvalue()
    options = CutOptions(type="mask", framing=Framing(crop=True), mode="fast")
    cut = remover.cut(photo, options)
    same = remover.remove(photo, type="mask", framing=Framing(crop=True), mode="fast")
    np.testing.assert_array_equal(cut.pixels, same.pixels)
    assert cut.box == same.box
    assert stages.encode(cut, CutOptions(format="png")) == cut.to_bytes("png")
    with pytest.raises(InvalidOptionError, match="mode must be one of"):
        remover.cut(photo, CutOptions(mode="slow"))  # type: ignore[arg-type]


def test_the_server_docs_list_every_http_option() -> None:
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "server.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            for name in cells[0].replace("`", "").split(","):
                rows[name.strip()] = cells[2]
    for option in options_for("http"):
        assert option.name in rows, f"docs/server.md has no row for {option.name}"
        if option.choices is not None and option.default is not None and option.name != "model":
            assert f"`{option.default}`" in rows[option.name], option.name


def test_remover_from_engine_options() -> None:
    from cleancut.remover import Remover

    rem = Remover.from_options(EngineOptions(model="isnet_quint8", device="cpu", threads=2, strict=True))
    assert (rem.spec.name, rem.device, rem.backend, rem.threads, rem.strict) == (
        "isnet_quint8",
        "cpu",
        "auto",
        2,
        True,
    )
    with pytest.raises(InvalidOptionError, match="threads must be at least 1"):
        Remover.from_options(EngineOptions(threads=0))


@pytest.mark.parametrize(
    "option",
    [
        o
        for o in options_for("http")
        if o.group in ("edges", "framing") and o.name not in ("background", "preset")
    ],
    ids=lambda o: o.name,
)
def test_the_http_parser_reads_each_option_by_its_kind(option: Option) -> None:
    """Each edge and framing option given alone as text reaches its dataclass field as the
    table's type says."""
    value: Any
    if option.kind == "choice":
        assert option.choices is not None
        value = option.choices[-1]
    elif option.kind == "bool":
        value = True
    else:
        assert option.minimum is not None and option.maximum is not None
        value = option.maximum if not option.exclusive_maximum else option.minimum
        if option.exclusive_minimum:
            value = option.maximum
        value = int(value) if option.kind == "int" else float(value)
    text = ("true" if value else "false") if option.kind == "bool" else str(value)
    # fit and blur shape a background: alone they change nothing (no Framing at all)
    extra = {"background": "blur"} if option.name in ("fit", "blur") else {}
    parsed = parse_options({option.name: text, **extra}, models=["isnet_fp16"])
    target = parsed.edges if option.group == "edges" else parsed.framing
    assert target is not None, option.name
    assert getattr(target, option.name) == value, option.name
    assert type(getattr(target, option.name)) is type(value), option.name


# --------------------------------------------------------- issue 24: one rule on every front


def test_alpha8_on_a_background_is_one_refusal_everywhere() -> None:
    """The library (CutOptions, Cutout.to_bytes), the CLI (its CutOptions) and the HTTP
    parser all raise the one message of :func:`cleancut.options.check_format`."""
    from cleancut.cutout import make_cutout
    from cleancut.options import check_format

    with pytest.raises(InvalidOptionError) as shared:
        check_format("alpha8", "foreground", bg_color=True)
    tiny = make_cutout(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), "foreground")
    messages = []
    for attempt in (
        lambda: CutOptions(format="alpha8", bg_color=(255, 255, 255)),
        lambda: parse_options({"format": "alpha8", "bg_color": "white"}, models=["isnet_fp16"]),
        lambda: tiny.to_bytes("alpha8", bg_color="white"),
    ):
        with pytest.raises(InvalidOptionError) as info:
            attempt()
        messages.append(str(info.value))
    assert messages == [str(shared.value)] * 3


def test_clips_refuse_photo_options_and_mp4_is_white_on_the_server() -> None:
    from cleancut.server.options import parse_video_options

    for values, fragment in (
        ({"quality": "0"}, "quality applies to photos only"),
        ({"format": "jpeg"}, "not a clip format"),
        ({"format": "alpha8"}, "not a clip format"),
        ({"format": "rgba8"}, "not a clip format"),
    ):
        with pytest.raises(InvalidOptionError, match=fragment):
            parse_video_options(values, models=["isnet_fp16"])
    # mp4 without a colour: accepted and flattened on white, as the CLI and remove_video do
    options = parse_video_options({"format": "mp4"}, models=["isnet_fp16"])
    assert options.format == "mp4" and options.cut.bg_color is None


def test_every_front_says_threads_are_capped() -> None:
    from click.testing import CliRunner

    from cleancut.cli import cli

    threads = next(o for o in OPTIONS() if o.name == "threads")
    assert "capped" in threads.help_for("cli") and "capped" in threads.help_for("library")
    for command in (["remove", "--help"], ["serve", "--help"]):
        out = CliRunner().invoke(cli, command).output
        assert "capped" in " ".join(out.split()), command
