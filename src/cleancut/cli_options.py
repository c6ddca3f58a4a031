"""Click options shared by ``cleancut remove``, ``cleancut info`` and ``cleancut serve``,
generated from the options table (:mod:`cleancut.options`).

It sits beside the table rather than in :mod:`cleancut.cli` because ``cleancut serve``
(:mod:`cleancut.server.command`) uses it too, and ``cli/__init__`` imports that command:
a module inside ``cli`` would close the circle ``cli → server.command → cli``."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import InvalidOptionError
from .framing import make_framing
from .options import CLIP_OPTIONS, OPTIONS, Option

__all__ = ["ENGINES", "cut_options", "engine_options", "ray_options", "table_option"]


def engine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--device`` and ``--backend``: what runs the model (from the options table)."""
    f = table_option("backend", show_default=True)(f)
    f = table_option("device", show_default=True)(f)
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
_EDGE_PARAMS = tuple(o.name for o in OPTIONS() if o.group == "edges")
_FRAMING_PARAMS = tuple(o.name for o in OPTIONS() if o.group == "framing")


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number in the allowed range", ctx=ctx, param=param)
    return value


def table_option(
    name: str, *decls: str, **overrides: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of the table entry ``name`` with the table's default, choices and
    help; ``decls``: short flags and the Python name where they differ (``-t``,
    ``output_type``); ``overrides``: other click attributes."""
    option = next(o for o in OPTIONS() if o.name == name)
    attrs: dict[str, Any] = {"default": option.default, "help": option.help_for("cli")}
    if option.metavar is not None:
        attrs["metavar"] = option.metavar
    if option.choices is not None:
        attrs["type"] = click.Choice(option.choices, case_sensitive=False)
    elif option.kind == "float" and option.minimum is not None and option.maximum is not None:
        attrs["type"] = click.FloatRange(option.minimum, option.maximum)
        attrs["callback"] = _finite  # FloatRange lets NaN through (every comparison is false)
    elif option.kind == "int" and option.minimum is not None:
        high = None if option.maximum is None else int(option.maximum)
        attrs["type"] = click.IntRange(int(option.minimum), high)
    attrs.update(overrides)
    flags = [d for d in decls if d.startswith("-")]
    names = [d for d in decls if not d.startswith("-")]
    return click.option(*flags, option.flag, *names, **attrs)


def clip_option(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click flag of the clip-only table entry ``name`` (``--smooth/--no-smooth``), with
    the table's default and help."""
    option = next(o for o in CLIP_OPTIONS if o.name == name)
    assert option.kind == "bool"
    return click.option(
        f"{option.flag}/--no-{option.flag[2:]}", option.name, default=option.default,
        help="Video clips: " + option.help_for("cli"),
    )  # fmt: skip


def click_option(option: Option) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of one edge or framing entry of the table. Its default is ``None``
    (not given: the dataclass default stays); flags come as ``--x/--no-x``."""
    attrs: dict[str, Any] = {"default": None, "help": option.help_for("cli")}
    if option.metavar is not None:
        attrs["metavar"] = option.metavar
    if option.kind == "bool":
        return click.option(f"{option.flag}/--no-{option.flag[2:]}", option.name, **attrs)
    if option.kind == "choice":
        assert option.choices is not None
        attrs["type"] = click.Choice(option.choices, case_sensitive=False)
    else:
        attrs["type"] = {"int": int, "float": float, "text": str}[option.kind]
    return click.option(option.flag, option.name, **attrs)


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

    # click lists options in the reverse order of decoration: the last added comes first.
    for option in reversed([o for o in OPTIONS() if o.group in ("edges", "framing")]):
        click_option(option)(wrapper)
    return wrapper


def _flagged(exc: InvalidOptionError) -> str:
    """The message with the flag it is about first (``--min-island: min_island must be …``):
    the dataclasses name their fields, the user typed the flag."""
    message = str(exc)
    name = message.split(" ", 1)[0]
    if name in _EDGE_PARAMS or name in _FRAMING_PARAMS:
        return f"--{name.replace('_', '-')}: {message}"
    return message
