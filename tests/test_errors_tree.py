"""The exception tree of cleancut.errors and the package's public namespace."""

from __future__ import annotations

import inspect
import re
import types

import pytest

import cleancut
from cleancut import errors

# The tree as drawn in the errors.py docstring: class → (its cleancut parent, built-in parent)
TREE: dict[str, tuple[str, type[BaseException] | None]] = {
    "ImageError": ("CleancutError", ValueError),
    "InputNotFoundError": ("ImageError", FileNotFoundError),
    "UnreadableImageError": ("ImageError", None),
    "TruncatedImageError": ("ImageError", None),
    "UnsupportedImageError": ("ImageError", None),
    "ImageTooLargeError": ("ImageError", None),
    "InvalidOptionError": ("CleancutError", ValueError),
    "ModelError": ("CleancutError", None),
    "UnknownModelError": ("ModelError", KeyError),
    "ModelNotFoundError": ("ModelError", FileNotFoundError),
    "DownloadError": ("ModelError", ConnectionError),
    "ChecksumMismatchError": ("ModelError", ValueError),
    "DeviceError": ("CleancutError", RuntimeError),
    "OutputExistsError": ("CleancutError", FileExistsError),
    "OutputWriteError": ("CleancutError", OSError),
    "UrlRefusedError": ("CleancutError", ValueError),
    "UrlFetchError": ("CleancutError", ConnectionError),
    "CancelledError": ("CleancutError", RuntimeError),
}


def _docstring_tree() -> dict[str, tuple[str | None, str | None]]:
    """Parse the box drawing in errors.__doc__: name → (parent by indentation, built-in)."""
    assert errors.__doc__
    out: dict[str, tuple[str | None, str | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        m = re.match(r"^(\s*(?:[│ ]\s*)*(?:[├└]── )?)([A-Z]\w+Error)(?: \((\w+)\))?", line)
        if not m:
            continue
        depth, name, builtin = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        out[name] = (stack[-1][1] if stack else None, builtin)
        stack.append((depth, name))
    return out


def test_docstring_tree_is_the_tested_tree() -> None:
    drawn = _docstring_tree()
    assert drawn.pop("CleancutError") == (None, None)
    assert drawn == {name: (parent, b.__name__ if b else None) for name, (parent, b) in TREE.items()}


def test_all_lists_every_error_class() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)
    assert set(errors.__all__) == set(TREE) | {"CleancutError"}


@pytest.mark.parametrize("name", errors.__all__)
def test_error_is_exported_and_a_cleancut_error(name: str) -> None:
    cls = getattr(errors, name)
    assert getattr(cleancut, name) is cls
    assert name in cleancut.__all__
    assert issubclass(cls, cleancut.CleancutError)
    assert issubclass(cls, Exception)
    instance = cls("message")
    assert isinstance(instance, cleancut.CleancutError)
    with pytest.raises(cleancut.CleancutError):
        raise instance


@pytest.mark.parametrize(("name", "parents"), TREE.items())
def test_parents(name: str, parents: tuple[str, type[BaseException] | None]) -> None:
    cls = getattr(errors, name)
    parent, builtin = parents
    assert issubclass(cls, getattr(errors, parent))
    if builtin is not None:
        assert issubclass(cls, builtin)
        with pytest.raises(builtin):
            raise cls("x")


def test_catching_by_builtin_works() -> None:
    with pytest.raises(FileNotFoundError):
        raise errors.InputNotFoundError("no such file: a.png")
    with pytest.raises(ValueError):
        raise errors.TruncatedImageError("cut")  # an ImageError is a ValueError
    with pytest.raises(ValueError):
        raise errors.InvalidOptionError("bad")
    with pytest.raises(KeyError):
        raise errors.UnknownModelError("no model")
    with pytest.raises(OSError):
        raise errors.OutputExistsError("exists")
    with pytest.raises(ConnectionError):
        raise errors.DownloadError("offline")
    assert not issubclass(errors.ModelError, ValueError)
    assert not issubclass(errors.CleancutError, ValueError)
    assert not issubclass(errors.UnreadableImageError, OSError)


def test_unknown_model_error_str_is_the_plain_message() -> None:
    err = errors.UnknownModelError("unknown model 'x'; choose one of: isnet")
    assert str(err) == "unknown model 'x'; choose one of: isnet"
    assert str(KeyError("unknown model 'x'")) == "\"unknown model 'x'\""  # what it avoids
    assert str(errors.UnknownModelError()) == ""


def test_messages_are_kept() -> None:
    for name in errors.__all__:
        if name == "UnknownModelError":
            continue
        assert str(getattr(errors, name)("what happened")) == "what happened"


# --------------------------------------------------------------------------- namespace


def _public_names(module: types.ModuleType) -> set[str]:
    """Names a user sees on the package: not private, not submodules, not the
    ``from __future__ import annotations`` feature object."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and type(value).__module__ != "__future__"
    }


def test_all_lists_every_public_name() -> None:
    """Like httpx's test_exported_members: whatever __init__ defines or imports publicly
    is in __all__, and nothing else is."""
    assert _public_names(cleancut) == set(cleancut.__all__) - {"__version__"}


def test_every_name_in_all_exists() -> None:
    assert len(cleancut.__all__) == len(set(cleancut.__all__))
    for name in cleancut.__all__:
        assert hasattr(cleancut, name), name
    assert isinstance(cleancut.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", cleancut.__version__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from cleancut import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(cleancut.__all__)
