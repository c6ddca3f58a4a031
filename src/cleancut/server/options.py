"""The options of ``POST /api/remove``, parsed and validated in one place.

They may come from the query string or, for multipart uploads, from form fields (a form
field wins over a query parameter of the same name). Unknown names are refused rather than
ignored, so a typo such as ``bgcolor`` is a 422 and not a silently transparent cut-out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..codecs import FORMATS, OutputFormat, extension_for, normalize_format
from ..errors import InvalidOptionError
from ..models import resolve_model
from ..pipeline import OUTPUT_TYPES, OutputType, normalize_output_type, parse_color

__all__ = ["OPTION_NAMES", "RemoveOptions", "openapi_parameters", "parse_options"]

OPTION_NAMES: Final = ("model", "type", "format", "quality", "bg_color")
DEFAULT_QUALITY: Final = 0.8
#: Values of ``bg_color`` that mean "keep the alpha channel".
_TRANSPARENT: Final = frozenset({"", "none", "transparent"})


@dataclass(frozen=True)
class RemoveOptions:
    model: str
    type: OutputType
    format: OutputFormat
    quality: float
    bg_color: tuple[int, int, int] | None

    @property
    def extension(self) -> str:
        return extension_for(self.format).lstrip(".")


def _quality(value: str) -> float:
    try:
        q = float(value)
    except ValueError:
        raise InvalidOptionError(f"quality must be a number between 0 and 1, got {value!r}") from None
    if not math.isfinite(q) or not 0.0 <= q <= 1.0:
        raise InvalidOptionError(f"quality must be between 0 and 1, got {value!r}")
    return q


def parse_options(values: Mapping[str, str], *, models: Sequence[str]) -> RemoveOptions:
    """Validate raw option strings. ``models``: the loaded models, the default first.

    Raises :class:`~cleancut.errors.InvalidOptionError` (answered 422) for anything wrong,
    including combinations that could only fail after the inference (``alpha8`` of an image
    flattened onto a colour).
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
    out_type = normalize_output_type(values.get("type") or "foreground")
    fmt = normalize_format(values.get("format") or "png")
    quality = _quality(values["quality"]) if values.get("quality") else DEFAULT_QUALITY
    raw_color = values.get("bg_color")
    color = None if raw_color is None or raw_color.strip().lower() in _TRANSPARENT else parse_color(raw_color)
    if fmt == "alpha8" and color is not None and out_type != "mask":
        raise InvalidOptionError("format alpha8 has no colour channels: leave bg_color out")
    return RemoveOptions(model, out_type, fmt, quality, color)


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
    ]
