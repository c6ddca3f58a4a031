"""Click options shared by ``cleancut remove``, ``cleancut info`` and ``cleancut serve``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .edges import DECONTAMINATE_METHODS, MAX_FEATHER, REFINE_METHODS
from .errors import InvalidOptionError
from .framing import FITS, MAX_MARGIN, MAX_SIZE, PRESETS, make_framing
from .inference.runtime import BACKENDS, DEVICES

__all__ = ["ENGINES", "cut_options", "engine_options", "ray_options"]


def engine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--device`` and ``--backend``: what runs the model."""
    f = click.option(
        "--backend",
        default="auto",
        show_default=True,
        type=click.Choice(BACKENDS, case_sensitive=False),
        help="Inference engine; auto picks the fastest one verified on this machine.",
    )(f)
    f = click.option(
        "--device",
        default="auto",
        show_default=True,
        type=click.Choice(DEVICES, case_sensitive=False),
    )(f)
    return f


ENGINES = ("local", "ray")


def ray_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--engine``, ``--address`` and ``--num-workers``: where a batch runs (docs/ray.md)."""
    f = click.option(
        "--num-workers",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Ray: actors, each holding one loaded model (default: one per GPU, else one per 4 CPUs).",
    )(f)
    f = click.option(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray: the cluster to join (HEAD:6379, ray://HEAD:10001, auto); "
        "default: start a local Ray for this run.",
    )(f)
    f = click.option(
        "--engine",
        default="local",
        show_default=True,
        type=click.Choice(ENGINES, case_sensitive=False),
        help="local: this process; ray: a Ray cluster, for inputs and -o that may be URIs "
        "(s3://…), with a resumable manifest in -o (pip install 'cleancut[ray]').",
    )(f)
    return f


#: The parameters of the edge and framing options, as click passes them to the command.
_EDGE_PARAMS = ("refine", "decontaminate", "threshold", "feather", "min_island", "min_hole")
_FRAMING_PARAMS = (
    "background", "fit", "blur", "shadow", "crop", "margin", "square", "padding", "max_size", "preset",
)  # fmt: skip


def cut_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The edge and framing options of ``cleancut remove``, handed to the command as two
    objects: ``edges`` (:class:`~cleancut.edges.EdgeOptions` or ``None``) and ``framing``
    (:class:`~cleancut.framing.Framing` or ``None``). A bad value or combination is a usage
    error (exit 2) naming the option, before any model is loaded.

    The numbers are parsed as plain ``float``/``int`` and bounded only by the dataclasses'
    ``validate()`` (the one place of each bound, shared with the library and the HTTP API),
    so NaN, infinities and huge values get the same refusal everywhere."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .api import edge_options

        edge = {k: kwargs.pop(k) for k in _EDGE_PARAMS}
        frame = {k: kwargs.pop(k) for k in _FRAMING_PARAMS}
        try:
            edges = edge_options(**edge)
            preset = frame.pop("preset")
            framing = make_framing(preset, **frame)
        except InvalidOptionError as exc:
            click.echo(f"error: {_flagged(exc)}", err=True)
            sys.exit(2)
        if framing is not None and isinstance(framing.background, Path) and not framing.background.is_file():
            click.echo(
                f"error: --background {frame['background']}: no such image file; give a colour "
                "(white, #rrggbb, R,G,B), blur, transparent, or an image file",
                err=True,
            )
            sys.exit(2)
        return f(*args, edges=edges, framing=framing, **kwargs)

    def option(*decls: str, **attrs: Any) -> None:
        click.option(*decls, **attrs)(wrapper)

    # click lists options in the reverse order of decoration: the last added comes first.
    option(
        "--preset",
        type=click.Choice(PRESETS, case_sensitive=False),
        default=None,
        help="ecommerce: white background, the subject cropped and centred on a square canvas "
        "filling 85 % of it, at most 2000 px (other options override its values).",
    )
    option(
        "--max-size",
        type=int,
        default=None,
        metavar="PX",
        help=f"Scale the output down so its longer side is at most PX (never up; 1..{MAX_SIZE}).",
    )
    option(
        "--padding",
        type=float,
        default=None,
        metavar="F",
        help="Square canvas: free border on each side, a fraction of the side, in [0, 0.5); implies "
        "--square. A canvas of more than --max-pixels pixels is refused (set --max-size).",
    )
    option(
        "--square/--no-square",
        default=None,
        help="Put the subject (with --crop) or the photo centred on a square canvas.",
    )
    option(
        "--margin",
        type=float,
        default=None,
        metavar="F",
        help=f"Crop margin on each side, a fraction of the subject's longer side, 0..{MAX_MARGIN:g} "
        "(default 0.05); implies --crop.",
    )
    option(
        "--crop/--no-crop",
        default=None,
        help="Crop to the subject (plus --margin), clamped to the photo.",
    )
    option(
        "--shadow/--no-shadow",
        default=None,
        help="A soft shadow under the subject (on a transparent background it goes into the alpha).",
    )
    option(
        "--blur",
        type=float,
        default=None,
        metavar="F",
        help="--background blur: the blur's sigma, a fraction of the output's longer side, "
        "in (0, 0.25] (default 0.02).",
    )
    option(
        "--fit",
        type=click.Choice(FITS, case_sensitive=False),
        default=None,
        help="--background IMAGE: fill covers the canvas (cropped), fit shows all of it "
        "(bars in its mean colour). Default: fill.",
    )
    option(
        "--background",
        default=None,
        metavar="COLOR|blur|IMAGE",
        help="What goes behind the subject: a colour (white, #rrggbb, R,G,B), blur (the photo "
        "itself, blurred), an image file, or transparent (the default). Opaque outputs have no "
        "alpha, so JPEG works as is.",
    )
    option(
        "--min-hole",
        type=float,
        default=None,
        metavar="F",
        help="Fill holes in the subject smaller than this fraction of the image area, in [0, 1).",
    )
    option(
        "--min-island",
        type=float,
        default=None,
        metavar="F",
        help="Drop subject islands smaller than this fraction of the image area, in [0, 1).",
    )
    option(
        "--feather",
        type=float,
        default=None,
        metavar="PX",
        help=f"Soften the mask's edge: a Gaussian of this sigma in pixels, 0..{MAX_FEATHER:g}.",
    )
    option(
        "--threshold",
        type=int,
        default=None,
        metavar="0..255",
        help="Make the mask hard: subject where it is at least this value.",
    )
    option(
        "--decontaminate",
        type=click.Choice(DECONTAMINATE_METHODS, case_sensitive=False),
        default=None,
        help="Replace the old background's colour in soft edge pixels by the subject's "
        "(default: blur_fusion; none keeps the photo's colours).",
    )
    option(
        "--refine",
        type=click.Choice(REFINE_METHODS, case_sensitive=False),
        default=None,
        help="Mask upsampling: bilinear (default: the reference's) or guided (follows the photo's "
        "edges; softens thin structures).",
    )
    return wrapper


def _flagged(exc: InvalidOptionError) -> str:
    """The message with the flag it is about first (``--min-island: min_island must be …``):
    the dataclasses name their fields, the user typed the flag."""
    message = str(exc)
    name = message.split(" ", 1)[0]
    if name in _EDGE_PARAMS or name in _FRAMING_PARAMS:
        return f"--{name.replace('_', '-')}: {message}"
    return message
