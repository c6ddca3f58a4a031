"""The flat functions, the reference's ``removeBackground`` & co.: flat keywords (the
library's rows of :func:`cleancut.options.OPTIONS`) made into one
:class:`~cleancut.options.EngineOptions`, :class:`~cleancut.edges.EdgeOptions` and
:class:`~cleancut.framing.Framing` for one shared :class:`Remover` per engine and settings,
so the model loads once per process. A keyword left at ``None`` keeps the default.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from . import io as codecs
from . import pipeline
from .config import Settings
from .framing import Background, make_framing
from .io.decode import ImageInput
from .models import DEFAULT_MODEL
from .options import EngineOptions
from .progress import CancelSignal, ProgressCallback
from .remover import Cutout, Remover

if TYPE_CHECKING:
    from .edges import EdgeOptions

__all__ = [
    "alphamask",
    "apply_segmentation_mask",
    "edge_options",
    "preload",
    "remove_background",
    "remove_foreground",
    "segment_foreground",
]

_removers: dict[tuple[Any, ...], Remover] = {}
_lock = threading.Lock()


def cached_remover(engine: EngineOptions, settings: Settings | None) -> Remover:
    """The process's one :class:`Remover` for these engine options and settings."""
    settings = settings if settings is not None else Settings.from_env()
    key = (engine, settings)
    with _lock:
        rem = _removers.get(key)
        if rem is None:
            rem = Remover.from_options(engine, settings=settings)
            _removers[key] = rem
        return rem


def _cut(
    output_type: str,
    image: ImageInput,
    settings: Settings | None,
    progress: ProgressCallback | None,
    cancel: CancelSignal | None,
    keywords: dict[str, Any],
) -> Cutout:
    """The one body of the flat functions: their keywords (the library's options of the
    table, :func:`cleancut.options.options_for`) as :class:`~cleancut.options.EngineOptions`,
    :class:`~cleancut.edges.EdgeOptions`, :class:`~cleancut.framing.Framing` and the mode."""
    from .options import options_for

    given: dict[str, dict[str, Any]] = {"engine": {}, "output": {}, "edges": {}, "framing": {}}
    for option in options_for("library"):
        given[option.group][option.name] = keywords[option.name]
    engine = EngineOptions(**given["engine"])
    framing = given["framing"]
    rem = cached_remover(engine, settings)
    return rem.remove(
        image,
        type=output_type,
        edges=edge_options(**given["edges"]),
        framing=make_framing(framing.pop("preset"), **framing),
        mode=given["output"]["mode"],
        progress=progress,
        cancel=cancel,
    )


def remove_background(
    image: ImageInput,
    *,
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    model_family: str | None = None,
    model_sha256: str | None = None,
    mode: str = "default",
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    refine: str | None = None,
    decontaminate: str | None = None,
    threshold: int | None = None,
    feather: float | None = None,
    min_island: float | None = None,
    min_hole: float | None = None,
    background: Background = None,
    fit: str | None = None,
    blur: float | None = None,
    shadow: bool | None = None,
    crop: bool | None = None,
    margin: float | None = None,
    square: bool | None = None,
    padding: float | None = None,
    max_size: int | None = None,
    preset: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
) -> Cutout:
    """Keep the subject: RGBA pixels whose alpha is the subject mask.

    ``image`` is a path, bytes, a binary file, a PIL image or a numpy array. Save with
    ``.save("out.png")`` or encode with ``.to_bytes("webp", quality=0.9)``.

    ``model``: a published name (``cleancut models list``; default IS-Net fp16), a path to an
    ONNX file of your own or an ``https://`` URL of one, with ``model_family`` (``birefnet``,
    ``isnet``, ``ben2``, ``u2net``, ``isnet-imgly``; else the graph's ``cleancut.family``
    metadata) and optionally ``model_sha256`` (a URL without it is fetched over https only and
    its SHA-256 recorded on first use).

    ``mode``: ``default`` (one pass at the model's size, the reference's), ``best`` (that pass
    mirrored too, and for IS-Net 768² passes, averaged: better masks for about 3.1× the network
    time) or ``fast`` (IS-Net: one 768² pass); see :mod:`cleancut.passes` and the README's
    quality table.

    Edges: ``refine`` (``bilinear``/``guided``), ``decontaminate`` (``none``/``blur_fusion``/
    ``multilevel``), ``threshold`` (0..255), ``feather`` (px, 0..500), ``min_island``/``min_hole``
    (fractions of the image area, [0, 1)); what is not given keeps
    :class:`~cleancut.edges.EdgeOptions`' default (the reference's bilinear mask, which
    scores best on real photos, with blur-fusion colour decontamination;
    ``decontaminate="none"`` gives the reference's plain cut-out). Framing: ``background``
    (a colour, ``"blur"``, an image path/bytes/array, or ``"transparent"``), ``fit``
    (``fill``/``fit``), ``blur`` (sigma, fraction of the size, (0, 0.25]), ``shadow``, ``crop``,
    ``margin`` (fraction of the subject's size, 0..10; implies ``crop``), ``square``, ``padding``
    (fraction of the canvas, [0, 0.5); implies ``square``), ``max_size`` (px, 1..65535),
    ``preset="ecommerce"``. A value out of its range (NaN and infinities included) raises
    :class:`~cleancut.errors.InvalidOptionError` before any work; a framed canvas of more
    than ``settings.max_pixels`` pixels raises :class:`~cleancut.errors.ImageTooLargeError`.
    """
    return _cut("foreground", image, settings, progress, cancel, locals())


def remove_foreground(
    image: ImageInput,
    *,
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    model_family: str | None = None,
    model_sha256: str | None = None,
    mode: str = "default",
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    refine: str | None = None,
    decontaminate: str | None = None,
    threshold: int | None = None,
    feather: float | None = None,
    min_island: float | None = None,
    min_hole: float | None = None,
    background: Background = None,
    fit: str | None = None,
    blur: float | None = None,
    shadow: bool | None = None,
    crop: bool | None = None,
    margin: float | None = None,
    square: bool | None = None,
    padding: float | None = None,
    max_size: int | None = None,
    preset: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
) -> Cutout:
    """Keep the background: alpha is ``255 − mask``. Options as :func:`remove_background`
    (a ``background`` fills where the subject was; crop and centring follow the subject)."""
    return _cut("background", image, settings, progress, cancel, locals())


def segment_foreground(
    image: ImageInput,
    *,
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    model_family: str | None = None,
    model_sha256: str | None = None,
    mode: str = "default",
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    refine: str | None = None,
    decontaminate: str | None = None,
    threshold: int | None = None,
    feather: float | None = None,
    min_island: float | None = None,
    min_hole: float | None = None,
    background: Background = None,
    fit: str | None = None,
    blur: float | None = None,
    shadow: bool | None = None,
    crop: bool | None = None,
    margin: float | None = None,
    square: bool | None = None,
    padding: float | None = None,
    max_size: int | None = None,
    preset: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
) -> Cutout:
    """The subject mask as an 8-bit gray image (``Cutout.pixels`` is ``[H, W]``). Edge options
    as :func:`remove_background`; of the framing ones, ``crop``, ``margin``, ``square``,
    ``padding``, ``max_size`` apply (a background or shadow is refused)."""
    return _cut("mask", image, settings, progress, cancel, locals())


def edge_options(
    refine: str | None = None,
    decontaminate: str | None = None,
    threshold: int | None = None,
    feather: float | None = None,
    min_island: float | None = None,
    min_hole: float | None = None,
) -> EdgeOptions | None:
    """:class:`~cleancut.edges.EdgeOptions` from flat options (``None``: not given, the
    dataclass default stays); ``None`` when none is given, which every stage reads as the
    default ``EdgeOptions()``."""
    given: dict[str, Any] = {
        k: v
        for k, v in {
            "refine": refine,
            "decontaminate": decontaminate,
            "threshold": threshold,
            "feather": feather,
            "min_island": min_island,
            "min_hole": min_hole,
        }.items()
        if v is not None
    }
    if not given:
        return None
    from .edges import EdgeOptions

    for key in ("refine", "decontaminate"):
        if isinstance(given.get(key), str):
            given[key] = given[key].strip().lower().replace("-", "_")
    options = EdgeOptions(**given)
    options.validate()
    return options


#: The reference's alias of :func:`segment_foreground`.
alphamask = segment_foreground


def apply_segmentation_mask(
    image: ImageInput,
    mask: ImageInput,
    *,
    settings: Settings | None = None,
) -> Cutout:
    """Put ``mask`` (any image; its luminance, or its alpha if it has one) into ``image``'s
    alpha channel. The mask is resized to the image with the reference bilinear if needed."""
    settings = settings if settings is not None else Settings.from_env()
    img = codecs.decode(image, max_pixels=settings.max_pixels)
    if isinstance(mask, np.ndarray) and mask.ndim == 2 and mask.dtype == np.uint8:
        m = mask
    else:
        dm = codecs.decode(mask, max_pixels=settings.max_pixels)
        px = dm.pixels
        if px.shape[2] == 4 and int(px[:, :, 3].min()) < 255:
            m = np.ascontiguousarray(px[:, :, 3])
        else:  # ITU-R 601 luma, as PIL's convert("L")
            rgb = px[:, :, :3].astype(np.uint32)
            m = ((rgb[:, :, 0] * 299 + rgb[:, :, 1] * 587 + rgb[:, :, 2] * 114 + 500) // 1000).astype(
                np.uint8
            )
    if m.shape != (img.height, img.width):
        m = pipeline.resize_bilinear(m, img.height, img.width)
    return Cutout(pipeline.apply_mask(img.pixels, m), m, "foreground", img.icc_profile)


def preload(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    model_family: str | None = None,
    model_sha256: str | None = None,
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    progress: ProgressCallback | None = None,
) -> Remover:
    """Fetch and load one model now (only the one asked for, unlike the reference's
    ``preload`` that downloads every model), and return the shared :class:`Remover`.
    ``model``, ``model_family`` and ``model_sha256`` as for :class:`Remover`."""
    engine = EngineOptions(
        model=model,  # type: ignore[arg-type]
        model_family=model_family,
        model_sha256=model_sha256,
        device=device,
        backend=backend,
        strict=strict,
        threads=threads,
    )
    return cached_remover(engine, settings).load(progress=progress)
