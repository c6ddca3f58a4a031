"""``cleancut models list|fetch|path|verify``: the model files in the cache."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..models import DEFAULT_MODEL, MODELS, resolve_model
from .app import SettingsFlags, errors, settings_options
from .progress import FetchProgress

__all__ = ["models_group"]


@click.group("models")
def models_group() -> None:
    """List, fetch, locate and verify model files."""


def _human(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.1f} MiB"


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@settings_options
def models_list(as_json: bool, flags: SettingsFlags) -> None:
    """Every model, its aliases, and whether it is in the cache."""
    from ..models.installed import installed_path

    with errors():
        settings = flags.settings()
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
@settings_options
def models_fetch(
    names: tuple[str, ...], fetch_all: bool, force: bool, quiet: bool, flags: SettingsFlags
) -> None:
    """Download, verify and install models (default: the default model)."""
    from ..models.store import fetch_model

    with errors():
        settings = flags.settings()
        chosen = list(MODELS) if fetch_all else [resolve_model(n).name for n in names] or [DEFAULT_MODEL]
        for name in chosen:
            path = fetch_model(name, settings, progress=FetchProgress(quiet), force=force)
            if not quiet:
                click.echo(f"{name}: {path}")


@models_group.command("path")
@click.argument("name", default=DEFAULT_MODEL)
@settings_options
def models_path(name: str, flags: SettingsFlags) -> None:
    """Print where a model file lives; exit 1 if it has not been fetched."""
    from ..models.installed import installed_path

    with errors():
        settings = flags.settings()
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
@settings_options
def models_verify(names: tuple[str, ...], flags: SettingsFlags) -> None:
    """Check the size and SHA-256 of installed models; exit 1 if any is corrupt."""
    from ..models.installed import installed_path, verify_installed

    with errors():
        settings = flags.settings()
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
