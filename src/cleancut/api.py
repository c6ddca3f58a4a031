"""The flat functions: the reference's ``removeBackground`` & co. in Python style.

Each returns a :class:`~cleancut.remover.Cutout`. They share one :class:`Remover` per
model/device/settings in the process, so the model is loaded once however often they are called.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import codecs, pipeline
from .codecs import ImageInput
from .config import Settings
from .models import DEFAULT_MODEL
from .progress import CancelSignal, ProgressCallback
from .remover import Cutout, Remover

__all__ = [
    "alphamask",
    "apply_segmentation_mask",
    "preload",
    "remove_background",
    "remove_foreground",
    "segment_foreground",
]

_removers: dict[tuple[Any, ...], Remover] = {}
_lock = threading.Lock()


def _remover(
    model: str,
    device: str,
    strict: bool,
    threads: int | None,
    settings: Settings | None,
    backend: str = "auto",
) -> Remover:
    settings = settings if settings is not None else Settings.from_env()
    key = (model, device, backend, strict, threads, settings)
    with _lock:
        rem = _removers.get(key)
        if rem is None:
            rem = Remover(
                model, device=device, backend=backend, strict=strict, threads=threads, settings=settings
            )
            _removers[key] = rem
        return rem


def remove_background(
    image: ImageInput,
    *,
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
) -> Cutout:
    """Keep the subject: RGBA pixels whose alpha is the subject mask.

    ``image`` is a path, bytes, a binary file, a PIL image or a numpy array. Save with
    ``.save("out.png")`` or encode with ``.to_bytes("webp", quality=0.9)``.
    """
    rem = _remover(model, device, strict, threads, settings, backend)
    return rem.remove(image, type="foreground", progress=progress, cancel=cancel)


def remove_foreground(
    image: ImageInput,
    *,
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
) -> Cutout:
    """Keep the background: alpha is ``255 − mask``."""
    rem = _remover(model, device, strict, threads, settings, backend)
    return rem.remove(image, type="background", progress=progress, cancel=cancel)


def segment_foreground(
    image: ImageInput,
    *,
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
) -> Cutout:
    """The subject mask as an 8-bit gray image (``Cutout.pixels`` is ``[H, W]``)."""
    rem = _remover(model, device, strict, threads, settings, backend)
    return rem.remove(image, type="mask", progress=progress, cancel=cancel)


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
    model: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    backend: str = "auto",
    strict: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    progress: ProgressCallback | None = None,
) -> Remover:
    """Fetch and load one model now (only the one asked for, unlike the reference's
    ``preload`` that downloads every model), and return the shared :class:`Remover`."""
    return _remover(model, device, strict, threads, settings, backend).load(progress=progress)
