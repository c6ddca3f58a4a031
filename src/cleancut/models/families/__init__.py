"""Model families, one module each: a new family is one module here (with a ``FAMILY``),
found by :data:`FAMILIES` on import; nothing else lists them.

- :mod:`.isnet_imgly` — IS-Net as IMG.LY runs it (the default models);
- :mod:`.isnet` — IS-Net as its authors run it (``isnet-general-use``);
- :mod:`.birefnet` — BiRefNet and BRIA RMBG-2.0;
- :mod:`.ben2` — BEN2;
- :mod:`.u2net` — U²-Net.
"""

from __future__ import annotations

import importlib
import pkgutil

from ...errors import UnknownModelError
from .base import Family, GraphInfo, Normalization, Recipe

__all__ = ["FAMILIES", "Family", "GraphInfo", "Normalization", "Recipe", "family_names", "get_family"]

def _discover() -> dict[str, Family]:
    found: list[Family] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            family = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FAMILY", None)
            if isinstance(family, Family):
                found.append(family)
    # IMG.LY's IS-Net first (the default models' family), the rest by name
    found.sort(key=lambda f: (f.name != "isnet-imgly", f.name))
    return {f.name: f for f in found}


#: every family, by name
FAMILIES: dict[str, Family] = _discover()


def family_names() -> list[str]:
    return list(FAMILIES)


def get_family(name: str | Family) -> Family:
    """The family called ``name`` (case-insensitive, ``_`` or ``-``)."""
    if isinstance(name, Family):
        return name
    key = str(name).strip().lower().replace("_", "-")
    try:
        return FAMILIES[key]
    except KeyError:
        raise UnknownModelError(
            f"unknown model family {name!r}; choose one of: {', '.join(FAMILIES)}"
        ) from None
