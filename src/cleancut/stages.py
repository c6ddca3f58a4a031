"""The one place where a cut-out's stages are ordered, as plain functions over plain values:
decode → :func:`prepare` → :func:`infer` → :func:`make_mask` → compose
(:func:`cleancut.cutout.make_cutout`, via :func:`finish`) → :func:`encode`.

The remover, the local batch, the server engine and the Ray actor call these and differ
only in where each stage runs; a pass reaches the network through the ``run`` callable
given to :func:`infer`, so nothing here imports the remover.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from . import io as codecs
from .cutout import Cutout, edges_or_default, make_cutout
from .passes import Pass, combine, pass_input, pass_output
from .progress import CancelSignal, ProgressCallback, stage

if TYPE_CHECKING:
    from .edges import EdgeOptions
    from .framing import Framing
    from .io.decode import DecodedImage, ImageInput
    from .models.families import Recipe
    from .options import CutOptions

__all__ = ["RunPass", "check_canvas", "decode", "encode", "finish", "infer", "make_mask", "prepare"]

#: How one pass reaches the network: ``run(pass, x)`` → the raw output ``[N, 1, S, S]``.
RunPass = Callable[[Pass, np.ndarray], np.ndarray]


def decode(source: ImageInput, *, max_pixels: int) -> DecodedImage:
    """The photo as RGB(A) pixels plus its colour profile, refused above ``max_pixels``."""
    return codecs.decode(source, max_pixels=max_pixels)


def check_canvas(decoded: DecodedImage, framing: Framing | None, *, max_pixels: int) -> None:
    """Between decode and inference: a framed canvas over the pixel limit, known from the
    photo's size alone, is refused now rather than after the model ran
    (:func:`cleancut.framing.geometry.check_canvas`)."""
    if framing is not None:
        from .framing import check_canvas as check

        check(decoded.width, decoded.height, framing, max_pixels=max_pixels)


def prepare(pixels: np.ndarray, mode: str, recipe: Recipe) -> list[np.ndarray]:
    """Every pass input of the quality ``mode``, ``[1, 3, H, W]`` float32 each, fed as the
    model's ``recipe`` says."""
    return [pass_input(pixels, p, recipe) for p in recipe.passes(mode)]


def infer(
    pixels: np.ndarray,
    mode: str,
    run: RunPass,
    *,
    recipe: Recipe,
    inputs: list[np.ndarray] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
    timings: dict[str, float] | None = None,
) -> np.ndarray:
    """The network's output ``[1, 1, S, S]`` in 0..1 for the quality ``mode``: each pass
    (its input from ``inputs`` when prepared ahead, else made here just before it runs, so
    at most one is in memory) through ``run``, mirrored passes turned back, averaged."""
    plan = recipe.passes(mode)
    prep = net = 0.0
    outputs = []
    for i, p in enumerate(plan):
        t0 = time.perf_counter()
        if inputs is not None:
            x = inputs[i]
        else:
            with stage("preprocess", progress, cancel):
                x = pass_input(pixels, p, recipe)
        t1 = time.perf_counter()
        with stage("inference", progress, cancel):
            outputs.append(pass_output(run(p, x), p))
        del x
        prep += t1 - t0
        net += time.perf_counter() - t1
    t0 = time.perf_counter()
    y = combine(outputs, recipe.average_gain)
    if timings is not None:
        timings.update(preprocess=prep + time.perf_counter() - t0, inference=net)
    return y


def make_mask(y: np.ndarray, pixels: np.ndarray, edges: EdgeOptions | None, recipe: Recipe) -> np.ndarray:
    """Network output → full-resolution mask through :func:`cleancut.edges.make_mask`
    (``edges=None``: the default :class:`~cleancut.edges.EdgeOptions`), upsampled as the
    model's ``recipe`` says."""
    from . import edges as edges_mod

    return edges_mod.make_mask(
        y, pixels, edges_or_default(edges), up=recipe.up, truncate=recipe.quantize == "floor"
    )


def finish(
    decoded: DecodedImage,
    y: np.ndarray,
    options: CutOptions,
    *,
    recipe: Recipe,
    max_pixels: int,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
    timings: dict[str, float] | None = None,
) -> Cutout:
    """Network output → the cut-out: the full-resolution mask (``options.edges``), then
    edge colours, background and framing (``options.type``, ``options.framing``)."""
    t0 = time.perf_counter()
    with stage("postprocess", progress, cancel):
        mask = make_mask(y, decoded.pixels, options.edges, recipe)
    t1 = time.perf_counter()
    cut = make_cutout(
        decoded.pixels,
        mask,
        options.type,
        decoded.icc_profile,
        edges=options.edges,
        framing=options.framing,
        max_pixels=max_pixels,
    )
    if timings is not None:
        timings.update(postprocess=t1 - t0, compose=time.perf_counter() - t1)
    return cut


def encode(cut: Cutout, options: CutOptions) -> bytes:
    """The cut-out in ``options.format`` (quality, flattening colour, PNG level)."""
    return cut.to_bytes(
        options.format,
        quality=options.quality,
        bg_color=options.bg_color,
        png_compress_level=options.png_compress_level,
    )
