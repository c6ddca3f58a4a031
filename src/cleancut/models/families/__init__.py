"""Model families, one module each: a new family is one module here plus its line below.

- :mod:`.isnet_imgly` — IS-Net as IMG.LY runs it (the default models);
- :mod:`.isnet` — IS-Net as its authors run it (``isnet-general-use``);
- :mod:`.birefnet` — BiRefNet and BRIA RMBG-2.0;
- :mod:`.ben2` — BEN2;
- :mod:`.u2net` — U²-Net.
"""

from __future__ import annotations

from ...errors import UnknownModelError
from . import ben2, birefnet, isnet, isnet_imgly, u2net
from .base import Family, GraphInfo, Normalization, Recipe

__all__ = ["FAMILIES", "Family", "GraphInfo", "Normalization", "Recipe", "family_names", "get_family"]

FAMILIES: dict[str, Family] = {
    f.name: f for f in (isnet_imgly.FAMILY, isnet.FAMILY, birefnet.FAMILY, ben2.FAMILY, u2net.FAMILY)
}


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
