"""``cleancut info``: versions, execution providers, the provider actually used, cache and
models, as text or JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from .._version import __version__
from ..cli_options import engine_options
from ..config import Settings
from ..errors import DeviceError
from ..models import DEFAULT_MODEL, MODELS, model_names, resolve_model
from ..options import EngineOptions
from .app import SettingsFlags, errors, settings_options

__all__ = ["info_cmd"]


@click.command("info")
@click.option(
    "-m",
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    type=click.Choice(model_names(), case_sensitive=False),
    help="The model whose session (backend, provider, threads) is reported.",
)
@engine_options
@click.option("--strict-device", is_flag=True, help="Fail if the device cannot be used.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@settings_options
def info_cmd(
    model: str, device: str, backend: str, strict_device: bool, as_json: bool, flags: SettingsFlags
) -> None:
    """Versions, execution providers, the provider actually used, cache and models."""
    with errors():
        settings = flags.settings()
        engine = EngineOptions(model=model, device=device, backend=backend, strict=strict_device)
        report = _report(engine, settings)
        if as_json:
            click.echo(json.dumps(report, indent=2))
        else:
            _print(report)


def _report(engine: EngineOptions, settings: Settings) -> dict[str, Any]:
    import platform

    import numpy
    import onnxruntime
    import PIL

    from ..inference.openvino import version as ov_version
    from ..inference.ortinstall import broken_install, conflict, onnxruntime_distributions
    from ..inference.runtime import available_providers, default_threads
    from ..models.installed import installed_path, verify_installed

    dists = onnxruntime_distributions()
    broken = broken_install(dists)
    # Two builds at once or an emptied package: said first, with the pip commands that fix it.
    problem = broken or conflict(dists)
    report: dict[str, Any] = {
        "cleancut": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "onnxruntime": getattr(onnxruntime, "__version__", "broken"),
        "onnxruntime_distributions": [f"{d.name} {d.version}" for d in dists],
        "onnxruntime_problem": problem,
        "openvino": ov_version() or "not installed",
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "available_providers": [] if broken else available_providers(),
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
    try:
        report["session"] = _session(engine, settings, report["models"])
    except DeviceError as exc:  # e.g. --device gpu --strict-device where none loads: still report
        report["session"] = f"cannot start: {exc}"
    return report


def _session(engine: EngineOptions, settings: Settings, states: dict[str, str]) -> dict[str, Any] | str:
    """What would run, loaded offline, when the model (or the one it is built from) is here."""
    from ..remover import Remover

    spec = resolve_model(engine.model)
    if states[spec.name] != "verified" and not (
        spec.derived_from and states[spec.derived_from] == "verified"
    ):
        return f"{spec.name} not fetched: run `cleancut models fetch {spec.name}`"
    rem = Remover.from_options(engine, settings=settings.with_(offline=True))
    return rem.load().describe()


def _print(report: dict[str, Any]) -> None:
    for key, value in report.items():
        if key == "onnxruntime_problem":
            if value:
                click.echo(f"onnxruntime problem: {value}")
        elif key == "models" or (key == "session" and isinstance(value, dict)):
            click.echo(f"{key}:")
            for line in _table(value):
                click.echo(line)
        else:
            click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


def _table(rows: dict[str, Any]) -> list[str]:
    """``rows`` as indented ``key  value`` lines, the values in one column as wide as the
    widest key needs: a long key (``backend_reason``) never runs into its value."""
    width = max((len(k) for k in rows), default=0) + 2
    return [f"  {k:<{width}}{v}" for k, v in rows.items()]
