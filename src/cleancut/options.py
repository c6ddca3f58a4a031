"""One options type for the cut and one for the engine.

:class:`CutOptions`: what a cut-out looks like (output type, format, quality, flattening
colour, quality mode, :class:`~cleancut.edges.EdgeOptions`, :class:`~cleancut.framing.Framing`);
the CLI, the folder batch, Ray and the server (which adds the model to run) all carry it.
:class:`EngineOptions`: what runs the model (model, device, backend, strict, threads).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .io.formats import OutputFormat, extension_for
from .models import DEFAULT_MODEL
from .passes import QualityMode
from .pipeline import OutputType

if TYPE_CHECKING:
    from .edges import EdgeOptions
    from .framing import Framing

__all__ = ["DEFAULT_PNG_LEVEL", "DEFAULT_QUALITY", "CutOptions", "EngineOptions"]

#: PNG zlib level. Level 1 writes a 12 MP cut-out several times faster than Pillow's
#: default 6 for a file only slightly larger (see benchmarks/stages.py).
DEFAULT_PNG_LEVEL = 1
#: JPEG/WebP quality, 0..1.
DEFAULT_QUALITY = 0.8


@dataclass(frozen=True)
class CutOptions:
    type: OutputType = "foreground"
    format: OutputFormat = "png"
    quality: float = DEFAULT_QUALITY
    bg_color: tuple[int, int, int] | None = None
    png_compress_level: int = DEFAULT_PNG_LEVEL
    #: Mask refinement and edge colours (``None``: :class:`~cleancut.edges.EdgeOptions`'
    #: defaults, the bilinear mask with blur-fusion decontamination).
    edges: EdgeOptions | None = None
    #: Background, crop, canvas and size cap.
    framing: Framing | None = None
    #: Quality mode (:mod:`cleancut.passes`): ``fast``, ``default`` or ``best``.
    mode: QualityMode = "default"

    @property
    def extension(self) -> str:
        return extension_for(self.format).lstrip(".")

    def loaded(self, max_pixels: int) -> CutOptions:
        """These options with a background image (path or bytes) decoded, so that a batch
        decodes it once, not once per job (:meth:`~cleancut.framing.Framing.loaded`)."""
        if self.framing is None:
            return self
        framing = self.framing.loaded(max_pixels=max_pixels)
        return self if framing is self.framing else replace(self, framing=framing)


@dataclass(frozen=True)
class EngineOptions:
    """What runs the model: the :class:`~cleancut.remover.Remover` arguments that every
    front (library keywords, CLI flags, ``cleancut serve``, Ray actors) shares."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    backend: str = "auto"
    strict: bool = False
    threads: int | None = None
