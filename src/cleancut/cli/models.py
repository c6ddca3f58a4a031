"""``cleancut models list|fetch|path|verify``: the published models and the files in the cache."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..models import DEFAULT_MODEL, MODELS, ModelSpec, resolve_model
from .app import SettingsFlags, errors, settings_options
from .progress import FetchProgress

__all__ = ["models_group"]


@click.group("models")
def models_group() -> None:
    """List, fetch, locate and verify model files (published models, or a path or URL of your own)."""


def _human(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def _size(spec: ModelSpec, path: Any) -> int | None:
    """The download size, or the built file's size for a derived model once it exists."""
    if spec.size is not None:
        return spec.size
    try:
        return int(path.stat().st_size)
    except OSError:
        return None


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@settings_options
def models_list(as_json: bool, flags: SettingsFlags) -> None:
    """Every published model: family, input size, download size, licence, installed."""
    from ..models.store import model_file

    with errors():
        settings = flags.settings()
        rows: list[dict[str, Any]] = []
        for spec in MODELS.values():
            path = model_file(spec, settings)
            size = spec.input_size
            rows.append(
                {
                    "name": spec.name,
                    "aliases": list(spec.aliases),
                    "family": spec.family,
                    "input": None if size is None else f"{size[1]}x{size[0]}",
                    "precision": spec.precision,
                    "size": _size(spec, path),
                    "license": spec.license,
                    "noncommercial": spec.noncommercial,
                    "url": spec.url,
                    "sha256": spec.sha256,
                    "md5": spec.md5,
                    "checksum_source": spec.checksum_source,
                    "derived_from": spec.derived_from,
                    "installed": path.is_file(),
                    "path": str(path),
                    "default": spec.name == DEFAULT_MODEL,
                    "description": spec.description,
                }
            )
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        click.echo(f"{'name':<22} {'family':<12} {'input':<10} {'size':>10}  {'installed':<9}  licence")
        for r in rows:
            mark = "yes" if r["installed"] else "no"
            names = r["name"] + (f" ({','.join(r['aliases'])})" if r["aliases"] else "")
            star = "  [default]" if r["default"] else ""
            click.echo(
                f"{names:<22} {r['family']:<12} {r['input'] or '?':<10} {_human(r['size']):>10}  "
                f"{mark:<9}  {r['license']}{star}"
            )
        click.echo(f"cache: {settings.models_dir}")
        click.echo("your own model: -m ./file.onnx --model-family NAME, or -m https://… [--model-sha256 HEX]")


@models_group.command("fetch")
@click.argument("names", nargs=-1, metavar="[NAME|PATH|URL]...")
@click.option(
    "--all",
    "fetch_all",
    is_flag=True,
    help="Fetch every published model (GBs; non-commercial ones need --accept-noncommercial).",
)
@click.option("--force", is_flag=True, help="Download again even if present and valid.")
@click.option("--model-family", default=None, metavar="NAME", help="The family of a file or URL of your own.")
@click.option("--model-sha256", default=None, metavar="HEX", help="The SHA-256 that pins a URL of your own.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@settings_options
def models_fetch(
    names: tuple[str, ...],
    fetch_all: bool,
    force: bool,
    model_family: str | None,
    model_sha256: str | None,
    quiet: bool,
    flags: SettingsFlags,
) -> None:
    """Download, verify and install models (default: the default model)."""
    from ..models.store import fetch_model

    with errors():
        settings = flags.settings()
        if fetch_all:
            chosen = [s for s in MODELS.values() if settings.accept_noncommercial or not s.noncommercial]
        else:
            chosen = [resolve_model(n, family=model_family, sha256=model_sha256) for n in names] or [
                resolve_model(DEFAULT_MODEL)
            ]
        for spec in chosen:
            path = fetch_model(spec, settings, progress=FetchProgress(quiet), force=force)
            if not quiet:
                click.echo(f"{spec.name}: {path}")


@models_group.command("path")
@click.argument("name", default=DEFAULT_MODEL, metavar="[NAME|URL]")
@settings_options
def models_path(name: str, flags: SettingsFlags) -> None:
    """Print where a model file lives; exit 1 if it has not been fetched."""
    from ..models.store import model_file

    with errors():
        settings = flags.settings()
        spec = resolve_model(name)
        path = model_file(spec, settings)
        click.echo(str(path))
        if not path.is_file():
            click.echo(f"note: {spec.name} is not fetched yet: cleancut models fetch {name}", err=True)
            sys.exit(1)


@models_group.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME|PATH|URL]...")
@click.option("--model-sha256", default=None, metavar="HEX", help="The SHA-256 a file of your own must have.")
@settings_options
def models_verify(names: tuple[str, ...], model_sha256: str | None, flags: SettingsFlags) -> None:
    """Check the size and SHA-256 of installed models (derived ones against their record);
    exit 1 if any is corrupt."""
    from ..models.store import verify_model

    with errors():
        settings = flags.settings()
        chosen = [resolve_model(n, sha256=model_sha256) for n in names] or list(MODELS.values())
        bad = 0
        width = max(len(s.name) for s in chosen) + 1
        for spec in chosen:
            ok = verify_model(spec, settings)
            if ok is None:
                click.echo(f"{spec.name:<{width}} not fetched")
                continue
            bad += not ok
            state = "ok" if ok else f"CORRUPT (run: cleancut models fetch --force {spec.name})"
            click.echo(f"{spec.name:<{width}} {state}")
        if bad:
            sys.exit(1)
