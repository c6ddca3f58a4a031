"""Video: cut the subject out of a clip, with steady edges (needs the ``video`` extra,
PyAV). ``remove_video(src, dst)`` for files, ``cut_frames(frames)`` for callers who feed
their own frames."""

from __future__ import annotations

from .api import VideoResult, remove_video
from .cut import cut_frames
from .decode import Frame, VideoInfo, iter_frames, probe
from .errors import (
    NoVideoStreamError,
    TruncatedVideoError,
    UnreadableVideoError,
    UnsupportedVideoError,
    VideoError,
    VideoTooLargeError,
)
from .temporal import TemporalSmoother

__all__ = [
    "Frame",
    "NoVideoStreamError",
    "TemporalSmoother",
    "TruncatedVideoError",
    "UnreadableVideoError",
    "UnsupportedVideoError",
    "VideoError",
    "VideoInfo",
    "VideoResult",
    "VideoTooLargeError",
    "cut_frames",
    "iter_frames",
    "probe",
    "remove_video",
]
