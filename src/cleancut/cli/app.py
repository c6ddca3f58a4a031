"""The ``cleancut`` group and what every command shares: the settings flags, one-line
messages on stderr, and the mapping of errors to exit codes (0 ok, 1 failed, 2 usage,
130 interrupted)."""

from __future__ import annotations

import functools
import logging
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .._version import __version__
from ..config import Settings
from ..errors import CleancutError, InvalidOptionError

__all__ = ["SettingsFlags", "cli", "echo", "errors", "one_line", "settings_options"]

#: The group's own flags, which may come before the input of the default command.
_VERBOSE_FLAGS = re.compile(r"-v+")


class _DefaultGroup(click.Group):
    """A group whose unknown first argument runs the ``remove`` command."""

    default_command = "remove"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Skip the group's own options (-v, -vv, --verbose) so `cleancut -v photo.jpg` still
        # runs `remove`; inserting `remove` before them would hand -v to the subcommand.
        i = 0
        while i < len(args) and (args[i] == "--verbose" or _VERBOSE_FLAGS.fullmatch(args[i])):
            i += 1
        if i < len(args) and args[i] not in self.commands and args[i] not in ("--help", "-h", "--version"):
            args = [*args[:i], self.default_command, *args[i:]]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cleancut")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v: which model, backend and why, device, threads, cache; -vv: also each file's stage timings.",
)
def cli(verbose: int) -> None:
    """Remove the background from photos with IS-Net.

    \b
    cleancut photo.jpg                  writes photo.cutout.png beside it
    cleancut photo.jpg -o out.png       writes out.png
    cleancut photos/ -o cutouts/        a whole folder (resumable: reruns skip done files)
    cleancut watch uploads/ -o cutouts/ cut photos as they arrive (until Ctrl-C)
    cleancut - < in.jpg > out.png       stdin to stdout
    cleancut models fetch isnet_fp16    fetch a model ahead of time
    cleancut info                       what runs here: versions, providers, models

    Run `cleancut remove --help` for every cut-out option.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    _setup_logging(level, click.get_current_context())


class _BarSafeHandler(logging.Handler):
    """Log lines on stderr through ``tqdm.write``, so that they never cut a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _setup_logging(level: int, ctx: click.Context) -> None:
    """cleancut's records at ``level``; other libraries' from WARNING only (their debug
    records, PIL's PNG chunk dumps among them, would bury -vv). The handler is added only
    where nobody configured logging (an embedding program or pytest keeps its own), and the
    level is put back when the command ends (several commands may run in one process)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = _BarSafeHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    own = logging.getLogger("cleancut")
    before = own.level
    own.setLevel(level)
    ctx.call_on_close(lambda: own.setLevel(before))


# --------------------------------------------------------------------------- messages

#: Unicode categories that break a line or cannot be printed: controls, surrogates (the
#: non-UTF-8 bytes of a file name), line and paragraph separators.
_UNSAFE = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _escape_char(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    if c in "\n\r\t":
        return repr(c)[1:-1]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` as one printable line: control characters, line and paragraph separators
    escaped (``\\n``, ``\\x1b``, ``\\u2028``) and the bytes of a file name that are not
    UTF-8 shown as ``\\xff``, so that a file named with a newline or in another encoding
    keeps its status on one line (and can be written to a UTF-8 stream at all)."""
    if text.isprintable():
        return text
    return "".join(_escape_char(c) if unicodedata.category(c) in _UNSAFE else c for c in text)


def echo(text: str) -> None:
    """One line on stderr (see :func:`one_line`)."""
    click.echo(one_line(text), err=True)


@contextmanager
def errors() -> Iterator[None]:
    """A cleancut error as one line on stderr and its exit code, never a traceback."""
    try:
        yield
    except InvalidOptionError as exc:  # a usage error, like click's own: exit 2
        echo(f"error: {exc}")
        sys.exit(2)
    except CleancutError as exc:
        echo(f"error: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("cancelled", err=True)
        sys.exit(130)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SettingsFlags:
    """``--cache-dir``, ``--model-url``, ``--offline/--online``, ``--max-pixels`` as given
    (``None``: not given, the environment or the default decides)."""

    cache_dir: Path | None = None
    model_url: str | None = None
    offline: bool | None = None
    max_pixels: int | None = None
    accept_noncommercial: bool | None = None

    def overrides(self) -> dict[str, Any]:
        """The flags given, by :class:`~cleancut.config.Settings` field name."""
        given = {
            "cache_dir": self.cache_dir,
            "model_base_url": self.model_url,
            "offline": self.offline,
            "max_pixels": self.max_pixels,
            "accept_noncommercial": self.accept_noncommercial,
        }
        return {k: v for k, v in given.items() if v is not None}

    def settings(self) -> Settings:
        """The environment's settings with these flags over them."""
        return Settings.from_env(**self.overrides())


def settings_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The settings flags, handed to the command as one ``flags``: :class:`SettingsFlags`."""

    @functools.wraps(f)
    def wrapper(
        *args: Any,
        cache_dir: Path | None,
        model_url: str | None,
        offline: bool | None,
        max_pixels: int | None,
        accept_noncommercial: bool,
        **kwargs: Any,
    ) -> Any:
        flags = SettingsFlags(cache_dir, model_url, offline, max_pixels, accept_noncommercial or None)
        return f(*args, flags=flags, **kwargs)

    for option in reversed(_SETTINGS_OPTIONS):  # click lists the last added first
        option(wrapper)
    return wrapper


_SETTINGS_OPTIONS = (
    click.option(
        "--accept-noncommercial",
        is_flag=True,
        default=False,
        help="Allow fetching models licensed for non-commercial use only (BRIA RMBG-2.0; "
        "env CLEANCUT_ACCEPT_NONCOMMERCIAL=1).",
    ),
    click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where models are kept (env CLEANCUT_CACHE_DIR; default: the user cache folder).",
    ),
    click.option(
        "--model-url",
        default=None,
        metavar="URL",
        help="Base URL of the model chunks: http(s):// or file:// (env CLEANCUT_MODEL_URL).",
    ),
    click.option(
        "--offline/--online",
        default=None,
        help="Never use the network; a missing model is an error (env CLEANCUT_OFFLINE=1).",
    ),
    click.option(
        "--max-pixels",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Refuse images with more pixels (default 100,000,000; env CLEANCUT_MAX_PIXELS).",
    ),
)
