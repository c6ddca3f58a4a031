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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..api import edge_options
from ..edges import DECONTAMINATE_METHODS, MAX_FEATHER, REFINE_METHODS
from ..errors import InvalidOptionError
from ..framing import FITS, MAX_MARGIN, MAX_SIZE, PRESETS, Framing, make_framing
from ..io.formats import FORMATS, normalize_format
from ..models import DEFAULT_MODEL, resolve_model
from ..options import DEFAULT_QUALITY, CutOptions
from ..passes import MODE_HELP, QUALITY_MODES, normalize_quality_mode
from ..pipeline import OUTPUT_TYPES, normalize_output_type, parse_color
from ..remover import check_options

__all__ = ["OPTION_NAMES", "RemoveOptions", "openapi_parameters", "parse_options"]

EDGE_OPTIONS: Final = ("refine", "decontaminate", "threshold", "feather", "min_island", "min_hole")
FRAMING_OPTIONS: Final = (
    "background", "fit", "blur", "shadow", "crop", "margin", "square", "padding", "max_size", "preset",
)  # fmt: skip
OPTION_NAMES: Final = (
    "model", "mode", "type", "format", "quality", "bg_color", *EDGE_OPTIONS, *FRAMING_OPTIONS,
)  # fmt: skip
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
    return make_framing(
        values.get("preset") or None,
        background=background,  # type: ignore[arg-type]
        fit=values.get("fit") or None,
        blur=_number("blur", values.get("blur")),
        shadow=_flag("shadow", values.get("shadow")),
        crop=_flag("crop", values.get("crop")),
        margin=_number("margin", values.get("margin")),
        square=_flag("square", values.get("square")),
        padding=_number("padding", values.get("padding")),
        max_size=_integer("max_size", values.get("max_size")),
    )


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
    model = models[0]
    if values.get("model"):
        model = resolve_model(values["model"]).name
        if model not in models:
            raise InvalidOptionError(
                f"model {model!r} is not loaded on this server; loaded: {', '.join(models)}"
            )
    mode = normalize_quality_mode(values.get("mode") or "default")
    out_type = normalize_output_type(values.get("type") or "foreground")
    fmt = normalize_format(values.get("format") or "png")
    quality = _quality(values["quality"]) if values.get("quality") else DEFAULT_QUALITY
    raw_color = values.get("bg_color")
    color = None if raw_color is None or raw_color.strip().lower() in _TRANSPARENT else parse_color(raw_color)
    if fmt == "alpha8" and color is not None and out_type != "mask":
        raise InvalidOptionError("format alpha8 has no colour channels: leave bg_color out")
    edges = edge_options(
        values.get("refine") or None,
        values.get("decontaminate") or None,
        _integer("threshold", values.get("threshold")),
        _number("feather", values.get("feather")),
        _number("min_island", values.get("min_island")),
        _number("min_hole", values.get("min_hole")),
    )
    framing = _framing(values, background_image)
    check_options(out_type, edges, framing)
    if framing is not None and framing.opaque:
        if color is not None:
            raise InvalidOptionError("bg_color and background both set the background: give one")
        if fmt == "alpha8":
            raise InvalidOptionError("format alpha8 has no colour channels: leave background out")
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


def openapi_parameters(models: Sequence[str]) -> list[dict[str, Any]]:
    """The query parameters as OpenAPI objects (validation itself is :func:`parse_options`)."""

    def param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    return [
        param(
            "model",
            "Model to run (default: the server's first model). Also accepted as a form field.",
            {"type": "string", "enum": list(models), "default": models[0]},
        ),
        param(
            "mode",
            MODE_HELP + " Also accepted as a form field.",
            {"type": "string", "enum": list(QUALITY_MODES), "default": "default"},
        ),
        param(
            "type",
            "foreground: keep the subject; background: keep the rest; mask: 8-bit gray mask.",
            {"type": "string", "enum": list(OUTPUT_TYPES), "default": "foreground"},
        ),
        param(
            "format",
            "Output format. rgba8/alpha8 are raw pixels; the size is in the Content-Type "
            "(image/x-rgba8;width=W;height=H). jpeg has no alpha: it is composited on bg_color "
            "(white by default).",
            {"type": "string", "enum": list(FORMATS), "default": "png"},
        ),
        param(
            "quality",
            "JPEG/WebP quality, 0..1 (WebP at 1 is lossless).",
            {"type": "number", "minimum": 0, "maximum": 1, "default": DEFAULT_QUALITY},
        ),
        param(
            "bg_color",
            "Composite onto an opaque colour: a name (white), #rrggbb or R,G,B. "
            "Omit (or 'transparent') to keep the alpha channel.",
            {"type": "string", "example": "white"},
        ),
        param(
            "refine",
            "Mask upsampling: bilinear (default: the reference's) or guided (follows the photo's "
            "edges; softens thin structures).",
            {"type": "string", "enum": list(REFINE_METHODS), "default": "bilinear"},
        ),
        param(
            "decontaminate",
            "Replace the old background's colour in soft edge pixels by the subject's "
            "(none keeps the photo's colours).",
            {"type": "string", "enum": list(DECONTAMINATE_METHODS), "default": "blur_fusion"},
        ),
        param(
            "threshold",
            "Make the mask hard: subject where it is at least this value (0..255).",
            {"type": "integer", "minimum": 0, "maximum": 255},
        ),
        param(
            "feather",
            f"Soften the mask's edge: Gaussian sigma in pixels, 0..{MAX_FEATHER:g}.",
            {"type": "number", "minimum": 0, "maximum": MAX_FEATHER},
        ),
        param(
            "min_island",
            "Drop subject islands smaller than this fraction of the image area, in [0, 1).",
            {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        ),
        param(
            "min_hole",
            "Fill holes smaller than this fraction of the image area, in [0, 1).",
            {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        ),
        param(
            "background",
            "What goes behind the subject: a colour (white, #rrggbb, R,G,B), blur (the photo "
            "blurred), or transparent (default). For an image, upload it as the multipart file "
            "field 'background'. Opaque outputs have alpha 255 (JPEG-ready).",
            {"type": "string", "example": "blur"},
        ),
        param(
            "fit",
            "Background image: fill covers the canvas (cropped), fit shows all of it.",
            {"type": "string", "enum": list(FITS), "default": "fill"},
        ),
        param(
            "blur",
            "background=blur: sigma as a fraction of the output's longer side, in (0, 0.25].",
            {"type": "number", "exclusiveMinimum": 0, "maximum": 0.25, "default": 0.02},
        ),
        param("shadow", "A soft shadow under the subject.", {"type": "boolean", "default": False}),
        param("crop", "Crop to the subject plus margin.", {"type": "boolean", "default": False}),
        param(
            "margin",
            f"Crop margin on each side, a fraction of the subject's longer side, 0..{MAX_MARGIN:g}; "
            "implies crop.",
            {"type": "number", "minimum": 0, "maximum": MAX_MARGIN, "default": 0.05},
        ),
        param(
            "square",
            "Centre the subject (with crop) or the photo on a square canvas.",
            {"type": "boolean", "default": False},
        ),
        param(
            "padding",
            "Square canvas: free border on each side, a fraction of the side, in [0, 0.5); implies "
            "square. A canvas of more pixels than the server's max_pixels is refused (413): set "
            "max_size.",
            {"type": "number", "minimum": 0, "exclusiveMaximum": 0.5},
        ),
        param(
            "max_size",
            f"Scale the output down so its longer side is at most this many pixels (1..{MAX_SIZE}).",
            {"type": "integer", "minimum": 1, "maximum": MAX_SIZE},
        ),
        param(
            "preset",
            "ecommerce: white background, subject cropped and centred on a square canvas "
            "(85 % of it), at most 2000 px; other options override it.",
            {"type": "string", "enum": list(PRESETS)},
        ),
    ]
