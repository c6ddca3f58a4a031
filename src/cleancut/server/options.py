"""The options of ``POST /api/remove``, parsed and validated in one place.

They may come from the query string or, for multipart uploads, from form fields (a form
field wins over a query parameter of the same name). Unknown names are refused rather than
ignored, so a typo such as ``bgcolor`` is a 422 and not a silently transparent cut-out.

The edge options (``refine`` … ``min_hole``) and framing options (``background`` …
``preset``) are those of :func:`cleancut.remove_background`, as text. A background image is
not a text option: it comes as a second multipart file, in the field ``background``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..api import edge_options
from ..errors import InvalidOptionError
from ..framing import Framing, make_framing
from ..io.formats import normalize_format
from ..models import DEFAULT_MODEL, MODELS
from ..options import CLIP_OPTIONS, DEFAULT_QUALITY, OPTIONS, CutOptions, Option, options_for
from ..passes import normalize_quality_mode
from ..pipeline import normalize_output_type, parse_color
from ..remover import check_options

__all__ = [
    "OPTION_NAMES",
    "VIDEO_FORMATS",
    "VIDEO_OPTION_NAMES",
    "RemoveOptions",
    "VideoOptions",
    "openapi_parameters",
    "openapi_video_parameters",
    "parse_options",
    "parse_video_options",
]

EDGE_OPTIONS: Final = tuple(o.name for o in OPTIONS() if o.group == "edges")
FRAMING_OPTIONS: Final = tuple(o.name for o in OPTIONS() if o.group == "framing")
#: The names ``POST /api/remove`` takes: the table's options for the HTTP front.
OPTION_NAMES: Final = tuple(o.name for o in options_for("http"))
#: Values of ``bg_color`` that mean "keep the alpha channel".
_TRANSPARENT: Final = frozenset({"", "none", "transparent"})


@dataclass(frozen=True)
class RemoveOptions(CutOptions):
    """The one :class:`~cleancut.options.CutOptions`, plus the model to run it on."""

    model: str = DEFAULT_MODEL


def _quality(value: str) -> float:
    try:
        q = float(value)
    except ValueError:
        raise InvalidOptionError(f"quality must be a number between 0 and 1, got {value!r}") from None
    if not math.isfinite(q) or not 0.0 <= q <= 1.0:
        raise InvalidOptionError(f"quality must be between 0 and 1, got {value!r}")
    return q


def _number(name: str, value: str | None) -> float | None:
    """The text as a float; its range (NaN and infinities included) is checked once, by the
    option's dataclass, as for the library and the CLI."""
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidOptionError(f"{name} must be a number, got {value[:40]!r}") from None


def _integer(name: str, value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:  # also a string of more than 4300 digits
        raise InvalidOptionError(f"{name} must be a whole number, got {value[:40]!r}") from None


_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _flag(name: str, value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    key = value.strip().lower()
    if key in _TRUE or key in _FALSE:
        return key in _TRUE
    raise InvalidOptionError(f"{name} must be true or false (1/0, yes/no, on/off), got {value!r}")


_PARSERS: Final[dict[str, Callable[[str, str | None], Any]]] = {
    "int": _integer,
    "float": _number,
    "bool": _flag,
}


def _framing(values: Mapping[str, str], background_image: bytes | None) -> Framing | None:
    text = values.get("background")
    background: object = None
    if background_image is not None:
        if text:
            raise InvalidOptionError("background is both a text field and an uploaded image: give one")
        background = background_image
    elif text:
        parsed = make_framing(background=text)
        if parsed is not None and isinstance(parsed.background, Path):
            # Never a path on the server: that would read the server's own files.
            raise InvalidOptionError(
                f"background {text!r} is not a colour (white, #rrggbb, R,G,B), blur or transparent; "
                "send an image as the multipart file field 'background'"
            )
        background = text
    given = _parsed("framing", values, skip=("background",))
    return make_framing(given.pop("preset"), background=background, **given)  # type: ignore[arg-type]


def _parsed(group: str, values: Mapping[str, str], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The text values of the table's ``group`` options, parsed by their kind (``None``
    where not given); their bounds are checked by the option's dataclass."""
    given: dict[str, Any] = {}
    for option in OPTIONS():
        if option.group != group or option.name in skip:
            continue
        text = values.get(option.name)
        if option.kind in ("choice", "text"):
            given[option.name] = text or None
        else:
            given[option.name] = _PARSERS[option.kind](option.name, text)
    return given


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def pick_model(value: str, models: Sequence[str]) -> str:
    """The loaded model a request names: a key of ``models`` (a custom model's stem, a
    published name), or a published model's alias. Never a path or URL: a request picks
    among what the server loaded and cannot make it read a file."""
    by_key = {_norm(m): m for m in models}
    if _norm(value) in by_key:
        return by_key[_norm(value)]
    published = next(
        (s.name for s in MODELS.values() if _norm(value) in {_norm(s.name), *map(_norm, s.aliases)}), None
    )
    if published is not None and published in models:
        return published
    loaded = ", ".join(models)
    if published is not None:
        raise InvalidOptionError(f"model {published!r} is not loaded on this server; loaded: {loaded}")
    raise InvalidOptionError(f"unknown model {value[:80]!r}; this server has loaded: {loaded}")


def parse_options(
    values: Mapping[str, str], *, models: Sequence[str], background_image: bytes | None = None
) -> RemoveOptions:
    """Validate raw option strings. ``models``: the loaded models, the default first.
    ``background_image``: the encoded bytes of an uploaded background image, if any (decoded
    later, on the I/O pool).

    Raises :class:`~cleancut.errors.InvalidOptionError` (answered 422) for anything wrong,
    including combinations that could only fail after the inference (``alpha8`` of an image
    flattened onto a colour, a background behind a mask).
    """
    unknown = sorted(set(values) - set(OPTION_NAMES))
    if unknown:
        raise InvalidOptionError(
            f"unknown option {', '.join(map(repr, unknown))}; known options: {', '.join(OPTION_NAMES)}"
        )
    model = pick_model(values["model"], models) if values.get("model") else models[0]
    mode = normalize_quality_mode(values.get("mode") or "default")
    out_type = normalize_output_type(values.get("type") or "foreground")
    fmt = normalize_format(values.get("format") or "png")
    quality = _quality(values["quality"]) if values.get("quality") else DEFAULT_QUALITY
    raw_color = values.get("bg_color")
    color = None if raw_color is None or raw_color.strip().lower() in _TRANSPARENT else parse_color(raw_color)
    edges = edge_options(**_parsed("edges", values))
    framing = _framing(values, background_image)
    check_options(out_type, edges, framing)
    if framing is not None and framing.opaque and color is not None:
        raise InvalidOptionError("bg_color and background both set the background: give one")
    # alpha8 on an opaque background: refused by CutOptions itself (options.check_format)
    return RemoveOptions(
        type=out_type,
        format=fmt,
        quality=quality,
        bg_color=color,
        edges=edges,
        framing=framing,
        mode=mode,
        model=model,
    )


_OPENAPI_TYPES: Final = {
    "choice": "string",
    "text": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
}
_EXAMPLES: Final = {"bg_color": "white", "background": "blur"}
#: Besides the query string, these come as multipart form fields too (so does every option).
_FORM_NOTE: Final = " Also accepted as a form field."


def openapi_schema(option: Option) -> dict[str, Any]:
    """An option's OpenAPI schema, from the one table: type, choices, bounds, default."""
    schema: dict[str, Any] = {"type": _OPENAPI_TYPES[option.kind]}
    if option.choices is not None:
        schema["enum"] = list(option.choices)
    if option.minimum is not None:
        schema["exclusiveMinimum" if option.exclusive_minimum else "minimum"] = option.minimum
    if option.maximum is not None:
        schema["exclusiveMaximum" if option.exclusive_maximum else "maximum"] = option.maximum
    if option.default is not None:
        schema["default"] = option.default
    if option.name in _EXAMPLES:
        schema["example"] = _EXAMPLES[option.name]
    return schema


def openapi_parameters(models: Sequence[str]) -> list[dict[str, Any]]:
    """The query parameters as OpenAPI objects, made from the options table
    (:data:`cleancut.options.OPTIONS`); validation itself is :func:`parse_options`."""
    params = []
    for option in options_for("http"):
        description = option.help_for("http")
        schema = openapi_schema(option)
        if option.name == "model":  # the models this server loaded, its first the default
            schema.update(enum=list(models), default=models[0])
        if option.name in ("model", "mode"):
            description += _FORM_NOTE
        params.append(
            {
                "name": option.name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": schema,
            }
        )
    return params


# --------------------------------------------------------------------------- clips

#: ``POST /api/remove-video``'s output formats and their media types.
VIDEO_FORMATS: Final = {"webm": "video/webm", "mov": "video/quicktime", "mp4": "video/mp4"}
_VIDEO_FORMAT_HELP: Final = (
    "webm: VP9 with alpha (plays in browsers); mov: ProRes 4444 with alpha (for editors); "
    "mp4: H.264, no alpha: on bg_color or a background, white when neither is given (as the "
    "CLI and remove_video do)"
)
#: Photo options that mean nothing for a clip (a clip's quality is its codec's).
_PHOTO_ONLY: Final = ("quality",)
#: Framing options a clip refuses (a crop would follow the subject and jump frame by frame);
#: they stay known names, so that asking for them gets that reason, not "unknown option".
_NO_CROP: Final = ("crop", "margin")
_SMOOTH: Final = next(o for o in CLIP_OPTIONS if o.name == "smooth")
#: The names ``POST /api/remove-video`` takes: the photo options that apply to a clip (the
#: same table, parsed by :func:`parse_options`), plus ``smooth``.
VIDEO_OPTION_NAMES: Final = tuple(
    dict.fromkeys((*(n for n in OPTION_NAMES if n not in _PHOTO_ONLY), "smooth"))
)


@dataclass(frozen=True)
class VideoOptions:
    """A clip's options: the photo options that apply (``cut``: model, mode, type,
    bg_color, edges, framing), the container ``format`` and the temporal ``smooth`` step."""

    cut: RemoveOptions
    format: str = "webm"
    smooth: bool = True

    @property
    def media_type(self) -> str:
        return VIDEO_FORMATS[self.format]


def parse_video_options(
    values: Mapping[str, str], *, models: Sequence[str], background_image: bytes | None = None
) -> VideoOptions:
    """Validate a clip's raw option strings: ``format`` and ``smooth`` here, every other
    option through :func:`parse_options`, so photos and clips agree on them. Raises
    :class:`~cleancut.errors.InvalidOptionError` (answered 422)."""
    unknown = sorted(set(values) - set(VIDEO_OPTION_NAMES))
    if unknown:
        photo_only = [n for n in unknown if n in _PHOTO_ONLY]
        hint = f" ({', '.join(photo_only)} applies to photos only)" if photo_only else ""
        raise InvalidOptionError(
            f"unknown option {', '.join(map(repr, unknown))} for a clip{hint}; known options: "
            f"{', '.join(VIDEO_OPTION_NAMES)}"
        )
    rest = dict(values)
    fmt = (rest.pop("format", "") or "webm").strip().lower()
    if fmt not in VIDEO_FORMATS:
        raise InvalidOptionError(f"format {fmt[:40]!r} is not a clip format: {_VIDEO_FORMAT_HELP}")
    smooth = _flag("smooth", rest.pop("smooth", None))
    cut = parse_options(rest, models=models, background_image=background_image)
    if cut.framing is not None and cut.framing.crop:  # refused as remove_video refuses it
        raise InvalidOptionError(
            "crop is for photos: on a clip it would follow the subject frame by frame and jump; "
            "use square, max_size or a background (the ecommerce preset with crop=false), and crop "
            "the clip in an editor"
        )
    # mp4 without a colour is flattened on white by the writer, as on every front
    return VideoOptions(cut=cut, format=fmt, smooth=_SMOOTH.default if smooth is None else smooth)


def openapi_video_parameters(models: Sequence[str]) -> list[dict[str, Any]]:
    """``POST /api/remove-video``'s query parameters: the photo parameters that apply to a
    clip (from the same table), ``format`` with the clip formats, and ``smooth``."""
    params = []
    for param in openapi_parameters(models):
        if param["name"] in (*_PHOTO_ONLY, *_NO_CROP, "smooth"):  # smooth: described below
            continue
        if param["name"] == "format":
            param = {
                **param,
                "description": _VIDEO_FORMAT_HELP + "." + _FORM_NOTE,
                "schema": {"type": "string", "enum": list(VIDEO_FORMATS), "default": "webm"},
            }
        params.append(param)
    params.append(
        {
            "name": "smooth",
            "in": "query",
            "required": False,
            "description": _SMOOTH.help_for("http") + _FORM_NOTE,
            "schema": {"type": "boolean", "default": _SMOOTH.default},
        }
    )
    return params
