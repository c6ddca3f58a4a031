"""cleancut — background removal with IS-Net on ONNX Runtime.

>>> from cleancut import remove_background      # doctest: +SKIP
>>> remove_background("photo.jpg").save("cutout.png")  # doctest: +SKIP
"""

from __future__ import annotations

import typing as _typing

from ._version import __version__
from .api import (
    alphamask,
    apply_segmentation_mask,
    edge_options,
    preload,
    remove_background,
    remove_foreground,
    segment_foreground,
)
from .config import Settings
from .edges import EdgeOptions
from .errors import (
    CancelledError,
    ChecksumMismatchError,
    CleancutError,
    DeviceError,
    DownloadError,
    ImageError,
    ImageTooLargeError,
    InputNotFoundError,
    InvalidOptionError,
    ModelError,
    ModelNotFoundError,
    OutputExistsError,
    OutputWriteError,
    TruncatedImageError,
    UnknownModelError,
    UnreadableImageError,
    UnsupportedImageError,
    UrlFetchError,
    UrlRefusedError,
)
from .framing import Framing, make_framing
from .io.decode import DecodedImage, decode
from .io.formats import FORMATS
from .models import DEFAULT_MODEL, MODELS, ModelSpec, resolve_model
from .options import CutOptions, EngineOptions
from .pipeline import OUTPUT_TYPES
from .remover import Cutout, Remover

if _typing.TYPE_CHECKING:
    from .video import cut_frames as cut_frames
    from .video import remove_video as remove_video

#: Names of the ``video`` extra, imported on first use (module ``__getattr__``), so that
#: ``import cleancut`` never imports PyAV. They stay out of ``__all__``, which lists what
#: the package itself defines: ``from cleancut import remove_video`` works all the same.
_VIDEO = ("cut_frames", "remove_video")


def __getattr__(name: str) -> _typing.Any:
    if name in _VIDEO:
        from . import video

        return getattr(video, name)
    raise AttributeError(f"module 'cleancut' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_VIDEO})


__all__ = [
    "DEFAULT_MODEL",
    "FORMATS",
    "MODELS",
    "OUTPUT_TYPES",
    "CancelledError",
    "ChecksumMismatchError",
    "CleancutError",
    "CutOptions",
    "Cutout",
    "DecodedImage",
    "DeviceError",
    "DownloadError",
    "EdgeOptions",
    "EngineOptions",
    "Framing",
    "ImageError",
    "ImageTooLargeError",
    "InputNotFoundError",
    "InvalidOptionError",
    "ModelError",
    "ModelNotFoundError",
    "ModelSpec",
    "OutputExistsError",
    "OutputWriteError",
    "Remover",
    "Settings",
    "TruncatedImageError",
    "UnknownModelError",
    "UnreadableImageError",
    "UnsupportedImageError",
    "UrlFetchError",
    "UrlRefusedError",
    "__version__",
    "alphamask",
    "apply_segmentation_mask",
    "decode",
    "edge_options",
    "make_framing",
    "preload",
    "remove_background",
    "remove_foreground",
    "resolve_model",
    "segment_foreground",
]
