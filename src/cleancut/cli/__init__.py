"""The ``cleancut`` command line.

``cleancut INPUT... [-o OUTPUT]`` cuts out images (the default command, also spelled
``cleancut remove``: :mod:`.remove`); ``cleancut models …`` manages model files
(:mod:`.models`); ``cleancut info`` reports what would run (:mod:`.info`); ``cleancut watch``
cuts out photos as they arrive in a folder (:mod:`.watch`); ``cleancut serve`` starts the HTTP
server. The group, its shared flags and exit codes are in :mod:`.app`.
"""

from __future__ import annotations

import sys

import click

from ..errors import InvalidOptionError
from ..server.command import serve as serve_cmd
from .app import cli
from .info import info_cmd
from .models import models_group
from .remove import remove_cmd
from .watch import watch_cmd

__all__ = ["cli", "main", "remove_cmd"]

cli.add_command(remove_cmd)
cli.add_command(models_group)
cli.add_command(info_cmd)
cli.add_command(watch_cmd)
cli.add_command(serve_cmd)  # its module imports no server libraries until it runs


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        cli.main(args=argv, prog_name="cleancut")
    except InvalidOptionError as exc:  # pragma: no cover - raised outside errors()
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
