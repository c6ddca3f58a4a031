"""Click options shared by ``cleancut remove``, ``cleancut info`` and ``cleancut serve``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .runtime import BACKENDS, DEVICES

__all__ = ["engine_options"]


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
