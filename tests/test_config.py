"""Settings read from the environment, with keyword overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleancut import InvalidOptionError, Settings
from cleancut.config import parse_env_bool


def test_cache_dir_given_as_a_string_is_a_path(tmp_path: Path) -> None:
    settings = Settings.from_env({}, cache_dir=str(tmp_path), offline=True)
    assert settings.cache_dir == tmp_path and settings.models_dir == tmp_path / "models"
    assert Settings(cache_dir="~/x").cache_dir == Path("~/x").expanduser()  # type: ignore[arg-type]
    assert settings.with_(cache_dir=str(tmp_path / "b")).cache_dir == tmp_path / "b"


def test_environment_booleans() -> None:
    assert Settings.from_env({"CLEANCUT_OFFLINE": " Yes "}).offline is True
    assert Settings.from_env({"CLEANCUT_OFFLINE": ""}).offline is False
    assert parse_env_bool("X", "off") is False
    with pytest.raises(InvalidOptionError, match="CLEANCUT_OFFLINE='maybe'"):
        Settings.from_env({"CLEANCUT_OFFLINE": "maybe"})
