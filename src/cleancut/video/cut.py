"""The per-frame cut: the photo stages (network output, then the same mask and edge
finishing as photos) with the temporal step between the network and the mask."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .. import pipeline
from ..cutout import Cutout, check_options, make_cutout
from ..options import CutOptions, EngineOptions
from ..passes import normalize_quality_mode
from ..progress import CancelSignal, check_cancel
from ..stages import make_mask, prepare
from .decode import Frame
from .temporal import TemporalSmoother

if TYPE_CHECKING:
    from ..config import Settings
    from ..edges import EdgeOptions
    from ..framing import Framing
    from ..remover import Remover

__all__ = ["cut_frames", "cut_with_options", "network_outputs", "prepare_options", "remover_for"]

T = TypeVar("T")


def remover_for(remover: Remover | None, engine: EngineOptions | None, settings: Settings | None) -> Remover:
    """The given remover, else the shared one the flat photo functions use for ``engine``."""
    if remover is not None:
        return remover
    from ..api import cached_remover

    return cached_remover(engine or EngineOptions(), settings)


def prepare_options(
    remover: Remover,
    *,
    type: str = "foreground",
    edges: EdgeOptions | None = None,
    framing: Framing | None = None,
    mode: str = "default",
) -> CutOptions:
    """The photo options checked (and a background image loaded) once, before any frame."""
    output_type = pipeline.normalize_output_type(type)
    check_options(output_type, edges, framing)
    quality_mode = normalize_quality_mode(mode)
    options = CutOptions(type=output_type, edges=edges, framing=framing, mode=quality_mode)
    return replace(options.loaded(remover.settings.max_pixels), type=output_type, mode=quality_mode)


def cut_frames(
    frames: Iterable[np.ndarray | Frame],
    *,
    remover: Remover | None = None,
    type: str = "foreground",
    edges: EdgeOptions | None = None,
    framing: Framing | None = None,
    mode: str = "default",
    smooth: bool | TemporalSmoother = True,
    engine: EngineOptions | None = None,
    settings: Settings | None = None,
    cancel: CancelSignal | None = None,
) -> Iterator[Cutout]:
    """Cut the subject out of consecutive frames (``[H, W, 3|4]`` uint8 RGB(A) arrays or
    :class:`~cleancut.video.decode.Frame`), one :class:`~cleancut.cutout.Cutout` per frame,
    in order. The options are those of photos; ``smooth`` (default on) steadies the edges
    over neighbouring frames where the image did not change
    (:class:`~cleancut.video.temporal.TemporalSmoother`; pass one to tune it, ``False`` for
    frames cut one by one). Options are checked before the first frame is read."""
    rem = remover_for(remover, engine, settings)
    options = prepare_options(rem, type=type, edges=edges, framing=framing, mode=mode)
    return cut_with_options(frames, rem, options, smooth, cancel)


def cut_with_options(
    frames: Iterable[np.ndarray | Frame],
    rem: Remover,
    options: CutOptions,
    smooth: bool | TemporalSmoother,
    cancel: CancelSignal | None,
) -> Iterator[Cutout]:
    """:func:`cut_frames` on options already checked (:func:`prepare_options`): the network
    output (batched where the session takes batches), the temporal step, then the photo
    mask and compose stages, frame by frame."""
    smoother = smooth if isinstance(smooth, TemporalSmoother) else (TemporalSmoother() if smooth else None)
    mode = options.mode
    items = (
        (item.pixels if isinstance(item, Frame) else np.ascontiguousarray(item), None) for item in frames
    )
    for pixels, _, y in network_outputs(items, rem, mode, cancel):
        if smoother is not None:
            y = smoother.step(pixels, y)
        mask = make_mask(y, pixels, options.edges, rem.recipe)
        yield make_cutout(
            pixels,
            mask,
            options.type,
            edges=options.edges,
            framing=options.framing,
            max_pixels=rem.settings.max_pixels,
        )


def network_outputs(
    frames: Iterable[tuple[np.ndarray, T]],
    rem: Remover,
    mode: str,
    cancel: CancelSignal | None = None,
) -> Iterator[tuple[np.ndarray, T, np.ndarray]]:
    """Each ``(pixels, tag)`` with the network's output for the pixels, in order. Where the
    session takes batches (a GPU: ``Session.max_batch`` > 1) the default mode's frames go
    through the network that many at once, as the folder batch does with photos; elsewhere
    one by one (a CPU: one frame already fills its cores). The temporal step runs after,
    frame by frame, so batching changes nothing but the speed."""
    size = rem.session.max_batch if normalize_quality_mode(mode) == "default" else 1
    it = iter(frames)
    if size <= 1:
        for pixels, tag in it:
            check_cancel(cancel, "the next frame")
            yield pixels, tag, rem.predict(pixels, mode=mode)
        return
    while group := list(itertools.islice(it, size)):
        check_cancel(cancel, "the next frames")
        xs = [prepare(pixels, "default", rem.recipe)[0] for pixels, _ in group]
        ys = rem.infer(np.concatenate(xs), cancel=cancel)
        for i, (pixels, tag) in enumerate(group):
            yield pixels, tag, ys[i : i + 1]
