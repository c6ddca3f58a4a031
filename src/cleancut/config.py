"""Settings, read from the environment once and passed around explicitly.

| variable                   | meaning                                                   |
|----------------------------|-----------------------------------------------------------|
| ``CLEANCUT_CACHE_DIR``     | where models live (default: the platform's user cache)    |
| ``CLEANCUT_MODEL_URL``     | base URL of the model files (http, https or file)          |
| ``CLEANCUT_OFFLINE``       | ``1`` forbids every network access                        |
| ``CLEANCUT_NPM``           | the npm client used as fallback; ``0`` turns it off       |
| ``CLEANCUT_NPM_REGISTRY``  | npm registry for the server's onnxruntime-web             |
| ``CLEANCUT_MAX_PIXELS``    | decompression-bomb guard: largest accepted image          |
| ``CLEANCUT_ACCEPT_NONCOMMERCIAL`` | ``1`` allows fetching non-commercial models (RMBG-2.0) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import InvalidOptionError
from .models import DEFAULT_BASE_URL

__all__ = ["DEFAULT_MAX_PIXELS", "Settings", "parse_env_bool"]

#: 100 MP: above every phone and most cameras (a 24 MP photo is a quarter of it), well
#: below what would exhaust memory (RGBA + mask of 100 MP is about 0.5 GB).
DEFAULT_MAX_PIXELS = 100_000_000

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("cleancut", appauthor=False))


def parse_env_bool(name: str, value: str) -> bool:
    """The environment variable ``name``'s ``value`` as a boolean (``1``/``true``/``yes``/
    ``on`` or ``0``/``false``/``no``/``off``/empty); anything else is an
    :class:`~cleancut.errors.InvalidOptionError` naming the variable."""
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InvalidOptionError(f"{name}={value!r} is not a boolean; use 1 or 0")


@dataclass(frozen=True)
class Settings:
    """Everything cleancut reads from its environment."""

    cache_dir: Path
    model_base_url: str = DEFAULT_BASE_URL
    offline: bool = False
    npm: str | None = "npm"
    #: Registry URL for the server's onnxruntime-web download; ``None``: what npm is set to.
    npm_registry: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    download_workers: int = 8
    download_timeout: float = 30.0
    download_retries: int = 3
    #: fetch models licensed for non-commercial use only (BRIA RMBG-2.0) once asked to
    accept_noncommercial: bool = False

    def __post_init__(self) -> None:
        # A folder given as a string (``Settings.from_env(cache_dir="~/models")``) is a path,
        # read as CLEANCUT_CACHE_DIR is.
        if not isinstance(self.cache_dir, Path):
            object.__setattr__(self, "cache_dir", Path(os.fspath(self.cache_dir)).expanduser())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        cache = env.get("CLEANCUT_CACHE_DIR")
        values["cache_dir"] = Path(cache).expanduser() if cache else _default_cache_dir()
        if env.get("CLEANCUT_MODEL_URL"):
            values["model_base_url"] = env["CLEANCUT_MODEL_URL"]
        if "CLEANCUT_OFFLINE" in env:
            values["offline"] = parse_env_bool("CLEANCUT_OFFLINE", env["CLEANCUT_OFFLINE"])
        if "CLEANCUT_NPM" in env:
            npm = env["CLEANCUT_NPM"].strip()
            values["npm"] = None if npm.lower() in _FALSE else npm
        if env.get("CLEANCUT_NPM_REGISTRY", "").strip():
            values["npm_registry"] = env["CLEANCUT_NPM_REGISTRY"].strip()
        if "CLEANCUT_ACCEPT_NONCOMMERCIAL" in env:
            values["accept_noncommercial"] = parse_env_bool(
                "CLEANCUT_ACCEPT_NONCOMMERCIAL", env["CLEANCUT_ACCEPT_NONCOMMERCIAL"]
            )
        if env.get("CLEANCUT_MAX_PIXELS"):
            try:
                values["max_pixels"] = int(env["CLEANCUT_MAX_PIXELS"])
            except ValueError:
                raise InvalidOptionError(
                    f"CLEANCUT_MAX_PIXELS={env['CLEANCUT_MAX_PIXELS']!r} is not an integer"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    def validated(self) -> Settings:
        if self.max_pixels < 1:
            raise InvalidOptionError(f"max_pixels must be positive, got {self.max_pixels}")
        if self.download_workers < 1:
            raise InvalidOptionError("download_workers must be at least 1")
        return self

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def chunks_dir(self) -> Path:
        return self.cache_dir / "chunks"
