"""The ``cleancut`` command line.

``cleancut INPUT... [-o OUTPUT]`` cuts out images (the default command, also spelled
``cleancut remove``); ``cleancut models …`` manages model files; ``cleancut info`` reports
what would run. Errors are one line on stderr, never a traceback; the exit code is 0 when
everything worked, 1 when anything failed, 2 for usage errors and 130 when interrupted.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._version import __version__
from .cli_options import cut_options, engine_options, ray_options, table_option
from .config import Settings
from .errors import CleancutError, InvalidOptionError
from .io.formats import normalize_format
from .models import DEFAULT_MODEL, MODELS, model_names, resolve_model
from .passes import normalize_quality_mode
from .pipeline import normalize_output_type, parse_color
from .server.command import serve as serve_cmd

if TYPE_CHECKING:
    from .batch import OutputOptions
    from .edges import EdgeOptions
    from .framing import Framing

__all__ = ["cli", "main"]

log = logging.getLogger("cleancut")


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


def _one_line(text: str) -> str:
    """``text`` as one printable line: control characters, line and paragraph separators
    escaped (``\\n``, ``\\x1b``, ``\\u2028``) and the bytes of a file name that are not
    UTF-8 shown as ``\\xff``, so that a file named with a newline or in another encoding
    keeps its status on one line (and can be written to a UTF-8 stream at all)."""
    if text.isprintable():
        return text
    return "".join(_escape_char(c) if unicodedata.category(c) in _UNSAFE else c for c in text)


def _echo(text: str) -> None:
    """One line on stderr (see :func:`_one_line`)."""
    click.echo(_one_line(text), err=True)


def _settings_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--max-pixels",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Refuse images with more pixels (default 100,000,000; env CLEANCUT_MAX_PIXELS).",
    )(f)
    f = click.option(
        "--offline/--online",
        default=None,
        help="Never use the network; a missing model is an error (env CLEANCUT_OFFLINE=1).",
    )(f)
    f = click.option(
        "--model-url",
        default=None,
        metavar="URL",
        help="Base URL of the model chunks: http(s):// or file:// (env CLEANCUT_MODEL_URL).",
    )(f)
    f = click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where models are kept (env CLEANCUT_CACHE_DIR; default: the user cache folder).",
    )(f)
    return f


def _settings(
    cache_dir: Path | None, model_url: str | None, offline: bool | None, max_pixels: int | None
) -> Settings:
    return Settings.from_env(
        cache_dir=cache_dir, model_base_url=model_url, offline=offline, max_pixels=max_pixels
    )


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except InvalidOptionError as exc:  # a usage error, like click's own: exit 2
        _echo(f"error: {exc}")
        sys.exit(2)
    except CleancutError as exc:
        _echo(f"error: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("cancelled", err=True)
        sys.exit(130)


class _Progress:
    """Progress callback: bars on a terminal, a few plain lines otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.bars: dict[str, Any] = {}
        self.announced: set[str] = set()

    def __call__(self, key: str, current: int, total: int) -> None:
        if self.quiet or not key.startswith("fetch:"):
            return
        if not self.tty:
            if key not in self.announced:
                self.announced.add(key)
                name = key.rsplit("/", 1)[-1]
                if total > 1:
                    click.echo(f"fetching {name} ({total / 2**20:.1f} MiB)…", err=True)
                else:  # a derived model: built locally, no bytes to count
                    click.echo(f"preparing {name} (once)…", err=True)
            return
        from tqdm import tqdm

        bar = self.bars.get(key)
        if bar is None:
            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"fetch {key.rsplit('/', 1)[-1]}",
                leave=False,
                file=sys.stderr,
            )
            self.bars[key] = bar
        bar.total = total
        bar.update(current - bar.n)
        if current >= total:
            bar.close()


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cleancut")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Remove the background from photos with IS-Net.

    \b
    cleancut photo.jpg                  writes photo.cutout.png beside it
    cleancut photo.jpg -o out.png       writes out.png
    cleancut photos/ -o cutouts/        a whole folder (resumable: reruns skip done files)
    cleancut - < in.jpg > out.png       stdin to stdout
    cleancut models fetch isnet_fp16    fetch a model ahead of time
    cleancut info                       what runs here: versions, providers, models

    Run `cleancut remove --help` for every cut-out option.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")


@cli.command("remove")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="PATH",
    help="Output file, or folder for several inputs; - for stdout.",
)
@table_option("model", "-m", show_default=True)
@table_option("mode", "quality_mode", show_default=True)
@table_option("type", "-t", "output_type", show_default=True)
@table_option("format", "-f", "fmt", default=None)  # default: from the -o extension
@table_option("quality", "-q", show_default=True)
@table_option("bg_color")
@cut_options
@engine_options
@ray_options
@table_option("strict", "strict_device", is_flag=True)
@table_option("threads")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist (never inputs).")
@click.option("--quiet", is_flag=True, help="Print only errors.")
@_settings_options
def remove_cmd(
    inputs: tuple[str, ...],
    output: str | None,
    model: str,
    quality_mode: str,
    output_type: str,
    fmt: str | None,
    quality: float,
    bg_color: str | None,
    edges: EdgeOptions | None,
    framing: Framing | None,
    device: str,
    backend: str,
    engine: str,
    address: str | None,
    num_workers: int | None,
    strict_device: bool,
    threads: int | None,
    overwrite: bool,
    quiet: bool,
    cache_dir: Path | None,
    model_url: str | None,
    offline: bool | None,
    max_pixels: int | None,
) -> None:
    """Cut out INPUT... (files, folders, or - for stdin)."""
    from .batch import OutputOptions, plan_jobs, run_jobs
    from .remover import Remover, check_options

    with _errors():
        settings = _settings(cache_dir, model_url, offline, max_pixels)
        color = parse_color(bg_color) if bg_color is not None else None
        if color is not None and framing is not None and framing.opaque:
            raise InvalidOptionError("--bg-color and --background both set the background: give one")
        check_options(normalize_output_type(output_type), edges, framing)
        if framing is not None:  # decoded now: a bad background image fails before the model loads
            framing = framing.loaded(max_pixels=settings.max_pixels)
        on_ray = _check_engine(engine, output, address, num_workers)
        # the Ray engine plans its own jobs: its inputs and -o may be URIs (s3://…)
        jobs, out_fmt = (
            ([], normalize_format(fmt) if fmt else "png")
            if on_ray
            else plan_jobs(inputs, output, normalize_format(fmt) if fmt else None)
        )
        # A run killed mid-write (SIGKILL, power loss) leaves hidden temp files of ours
        # beside its outputs; the rerun that resumes it clears those whose writer is gone.
        from .io.atomic import sweep_stale_temps

        for folder in sorted({job.output.parent for job in jobs if job.output is not None}):
            sweep_stale_temps(folder)
        options = OutputOptions(
            type=normalize_output_type(output_type),
            format=out_fmt,
            quality=quality,
            bg_color=color,
            edges=edges,
            framing=framing,
            mode=normalize_quality_mode(quality_mode),
        )
        if on_ray:
            assert output is not None
            # only what was given: each Ray worker reads its own environment for the rest
            overrides: dict[str, Any] = {"cache_dir": cache_dir, "model_base_url": model_url}
            overrides.update(offline=offline, max_pixels=max_pixels)
            _remove_on_ray(
                inputs,
                output,
                options,
                model=model,
                device=device,
                backend=backend,
                strict=strict_device,
                address=address,
                num_workers=num_workers,
                threads=threads,
                overwrite=overwrite,
                quiet=quiet,
                settings_overrides={k: v for k, v in overrides.items() if v is not None},
            )
            return
        if not jobs:
            click.echo("no images found in the given folders", err=True)
            sys.exit(1)
        # Several images: the backend may run them in parallel streams (batch.run_jobs).
        mode = "throughput" if len(jobs) > 1 else "latency"
        remover = Remover(
            model,
            device=device,
            backend=backend,
            strict=strict_device,
            threads=threads,
            settings=settings,
            scheduling=mode,
        )
        remover.load(progress=_Progress(quiet))

        from tqdm import tqdm

        show_bar = not quiet and len(jobs) > 1 and sys.stderr.isatty()
        counts = {"written": 0, "skipped": 0, "failed": 0}
        started = time.perf_counter()
        with tqdm(total=len(jobs), unit="img", disable=not show_bar, file=sys.stderr) as bar:
            for result in run_jobs(jobs, remover, options, overwrite=overwrite):
                counts[result.status] += 1
                bar.update(1)
                if result.status == "failed":
                    msg = result.error or "failed"
                    where = "" if result.job.name in msg else f"{result.job.name}: "
                    bar.write(_one_line(f"error: {where}{msg}"), file=sys.stderr)
                elif result.data is not None:
                    sys.stdout.buffer.write(result.data)
                    sys.stdout.buffer.flush()
                elif not quiet and not show_bar and len(jobs) > 1:
                    _echo(f"{result.status}: {result.job.name} -> {result.job.output}")
        elapsed = time.perf_counter() - started
        single_ok = len(jobs) == 1 and counts["failed"] == 0
        # One input: its error line (or stdout) says it all; a summary is for several.
        single_quiet = len(jobs) == 1 and (counts["failed"] or jobs[0].output is None)
        if not quiet and not single_quiet:
            if single_ok and counts["written"]:
                _echo(f"wrote {jobs[0].output} ({elapsed:.1f} s)")
            elif single_ok:
                _echo(f"skipped: {jobs[0].output} exists (use --overwrite)")
            else:
                click.echo(
                    f"{counts['written']} written, {counts['skipped']} skipped, "
                    f"{counts['failed']} failed, of {len(jobs)} in {elapsed:.1f} s",
                    err=True,
                )
        if counts["failed"]:
            sys.exit(1)


def _check_engine(engine: str, output: str | None, address: str | None, num_workers: int | None) -> bool:
    """Whether this run goes to Ray; usage errors for Ray options without ``--engine ray``."""
    if engine.lower() != "ray":
        if address is not None or num_workers is not None:
            raise InvalidOptionError("--address and --num-workers apply only with --engine ray")
        return False
    if output is None or output == "-":
        raise InvalidOptionError("--engine ray writes into a folder: give -o FOLDER (a path or a URI)")
    return True


def _remove_on_ray(
    inputs: tuple[str, ...],
    output: str,
    options: OutputOptions,
    *,
    quiet: bool,
    **engine: Any,
) -> None:
    """``remove --engine ray``: the same bar, error lines, summary and exit code as the local
    batch; the work runs in :mod:`cleancut.distributed`."""
    from tqdm import tqdm

    from .distributed import manifest_location, run_ray

    counts = {"written": 0, "skipped": 0, "failed": 0}
    started = time.perf_counter()
    show_bar = not quiet and sys.stderr.isatty()
    bar = tqdm(total=0, unit="img", disable=not show_bar, file=sys.stderr)

    def on_start(total: int) -> None:
        bar.total = total
        bar.refresh()
        if total == 0:
            click.echo("no images found in the given inputs", err=True)

    try:
        # Ray's own logs only with -v: the bar, error lines and summary are the interface
        ray_quiet = not log.isEnabledFor(logging.INFO)
        for result in run_ray(inputs, output, options, quiet=ray_quiet, on_start=on_start, **engine):
            counts[result.status] += 1
            bar.update(1)
            if result.status == "failed":
                msg = result.error or "failed"
                where = "" if result.input in msg else f"{result.input}: "
                bar.write(_one_line(f"error: {where}{msg}"), file=sys.stderr)
            elif not quiet and not show_bar:
                _echo(f"{result.status}: {result.input} -> {result.output}")
    finally:
        bar.close()
    total = sum(counts.values())
    if total == 0:
        sys.exit(1)
    if not quiet:
        _echo(
            f"{counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed, "
            f"of {total} in {time.perf_counter() - started:.1f} s (manifest: {manifest_location(output)})"
        )
    if counts["failed"]:
        sys.exit(1)


# --------------------------------------------------------------------------- models


@cli.group("models")
def models_group() -> None:
    """List, fetch, locate and verify model files."""


def _human(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.1f} MiB"


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_settings_options
def models_list(
    as_json: bool, cache_dir: Path | None, model_url: str | None, offline: bool | None, max_pixels: int | None
) -> None:
    """Every model, its aliases, and whether it is in the cache."""
    from .models.installed import installed_path

    with _errors():
        settings = _settings(cache_dir, model_url, offline, max_pixels)
        rows: list[dict[str, Any]] = []
        for spec in MODELS.values():
            path = installed_path(spec, settings)
            rows.append(
                {
                    "name": spec.name,
                    "aliases": list(spec.aliases),
                    "precision": spec.precision,
                    "size": spec.size,
                    "installed": path.is_file(),
                    "path": str(path),
                    "default": spec.name == DEFAULT_MODEL,
                    "description": spec.description,
                }
            )
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        click.echo(f"{'name':<14}{'aliases':<10}{'precision':<10}{'size':>11}  installed")
        for r in rows:
            mark = "yes" if r["installed"] else "no"
            star = " (default)" if r["default"] else ""
            click.echo(
                f"{r['name']:<14}{','.join(r['aliases']):<10}{r['precision']:<10}"
                f"{_human(r['size']):>11}  {mark}{star}"
            )
        click.echo(f"cache: {settings.models_dir}")


@models_group.command("fetch")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "fetch_all", is_flag=True, help="Fetch every model.")
@click.option("--force", is_flag=True, help="Download again even if present and valid.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@_settings_options
def models_fetch(
    names: tuple[str, ...],
    fetch_all: bool,
    force: bool,
    quiet: bool,
    cache_dir: Path | None,
    model_url: str | None,
    offline: bool | None,
    max_pixels: int | None,
) -> None:
    """Download, verify and install models (default: the default model)."""
    from .models.store import fetch_model

    with _errors():
        settings = _settings(cache_dir, model_url, offline, max_pixels)
        chosen = list(MODELS) if fetch_all else [resolve_model(n).name for n in names] or [DEFAULT_MODEL]
        for name in chosen:
            path = fetch_model(name, settings, progress=_Progress(quiet), force=force)
            if not quiet:
                click.echo(f"{name}: {path}")


@models_group.command("path")
@click.argument("name", default=DEFAULT_MODEL)
@_settings_options
def models_path(
    name: str, cache_dir: Path | None, model_url: str | None, offline: bool | None, max_pixels: int | None
) -> None:
    """Print where a model file lives; exit 1 if it has not been fetched."""
    from .models.installed import installed_path

    with _errors():
        settings = _settings(cache_dir, model_url, offline, max_pixels)
        path = installed_path(name, settings)
        click.echo(str(path))
        if not path.is_file():
            click.echo(
                f"note: {resolve_model(name).name} is not fetched yet: "
                f"cleancut models fetch {resolve_model(name).name}",
                err=True,
            )
            sys.exit(1)


@models_group.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@_settings_options
def models_verify(
    names: tuple[str, ...],
    cache_dir: Path | None,
    model_url: str | None,
    offline: bool | None,
    max_pixels: int | None,
) -> None:
    """Check the size and SHA-256 of installed models; exit 1 if any is corrupt."""
    from .models.installed import installed_path, verify_installed

    with _errors():
        settings = _settings(cache_dir, model_url, offline, max_pixels)
        chosen = [resolve_model(n) for n in names] or list(MODELS.values())
        bad = 0
        for spec in chosen:
            path = installed_path(spec, settings)
            if not path.is_file():
                click.echo(f"{spec.name:<14} not fetched")
                continue
            ok = verify_installed(spec, path, thorough=True)
            bad += not ok
            state = "ok" if ok else f"CORRUPT (run: cleancut models fetch --force {spec.name})"
            click.echo(f"{spec.name:<14} {state}")
        if bad:
            sys.exit(1)


# --------------------------------------------------------------------------- info


@cli.command("info")
@click.option(
    "-m",
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    type=click.Choice(model_names(), case_sensitive=False),
)
@engine_options
@click.option("--strict-device", is_flag=True, help="Fail if the device cannot be used.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_settings_options
def info_cmd(
    model: str,
    device: str,
    backend: str,
    strict_device: bool,
    as_json: bool,
    cache_dir: Path | None,
    model_url: str | None,
    offline: bool | None,
    max_pixels: int | None,
) -> None:
    """Versions, execution providers, the provider actually used, cache and models."""
    import platform

    import numpy
    import onnxruntime
    import PIL

    from .inference.openvino import version as ov_version
    from .inference.runtime import available_providers, default_threads
    from .models.installed import installed_path, verify_installed
    from .remover import Remover

    with _errors():
        settings = _settings(cache_dir, model_url, offline, max_pixels)
        report: dict[str, Any] = {
            "cleancut": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "onnxruntime": onnxruntime.__version__,
            "openvino": ov_version() or "not installed",
            "numpy": numpy.__version__,
            "pillow": PIL.__version__,
            "available_providers": available_providers(),
            "default_threads": default_threads(),
            "cache_dir": str(settings.cache_dir),
            "model_url": settings.model_base_url,
            "offline": settings.offline,
            "models": {},
        }
        for spec in MODELS.values():
            path = installed_path(spec, settings)
            report["models"][spec.name] = (
                "verified" if verify_installed(spec, path) else "corrupt" if path.is_file() else "not fetched"
            )
        spec = resolve_model(model)
        if report["models"][spec.name] == "verified" or (
            spec.derived_from and report["models"][spec.derived_from] == "verified"
        ):
            rem = Remover(
                spec,
                device=device,
                backend=backend,
                strict=strict_device,
                settings=settings.with_(offline=True),
            )
            report["session"] = rem.load().describe()
        else:
            report["session"] = f"{spec.name} not fetched: run `cleancut models fetch {spec.name}`"
        if as_json:
            click.echo(json.dumps(report, indent=2))
            return
        for key, value in report.items():
            if key == "models":
                click.echo("models:")
                for n, state in value.items():
                    click.echo(f"  {n:<14}{state}")
            elif key == "session" and isinstance(value, dict):
                click.echo("session:")
                for k, v in value.items():
                    click.echo(f"  {k:<12}{v}")
            else:
                click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


cli.add_command(serve_cmd)  # its module imports no server libraries until it runs


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        cli.main(args=argv, prog_name="cleancut")
    except InvalidOptionError as exc:  # pragma: no cover - raised outside _errors()
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
