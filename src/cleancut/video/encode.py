"""Write cut-out frames: VP9 with alpha (.webm), ProRes 4444 with alpha (.mov), H.264 on a
background colour (.mp4), a gray mask video, or a folder of RGBA PNGs; the source's audio
carried over (copied when the container takes its codec, else re-encoded) and every frame
keeping its timestamp (variable frame rates survive).

Every output is written under a temporary name beside the target (the pattern of
:func:`cleancut.io.atomic.temp_name_for`) and renamed over it only when complete; any error
removes the temporary (and any folder made for it), so nothing partial is left.

A folder of frames holds ``000000.png``, ``000001.png``, … and :data:`TIMESTAMPS`
(``timestamps.json``): the frame rate, the time base and every frame's file, pts and time in
seconds, so the timing (a variable frame rate too) survives. That file also marks the folder
as one cleancut wrote: only such a folder is ever replaced (``overwrite``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import pipeline
from ..errors import InvalidOptionError, OutputExistsError, OutputWriteError
from ..io.atomic import STALE_TEMP_AGE, TEMP_SUFFIX, pid_alive, temp_name_for
from .decode import VideoInfo
from .errors import UnsupportedVideoError

__all__ = [
    "TIMESTAMPS",
    "OutputKind",
    "Target",
    "VideoWriter",
    "is_frames_folder",
    "sweep_stale_frame_folders",
    "target_for",
]

OutputKind = Literal["webm", "mov", "mp4", "frames"]

#: Audio codecs each container takes as they are (anything else is re-encoded).
_AUDIO_COPY: dict[str, frozenset[str]] = {
    "webm": frozenset({"opus", "vorbis"}),
    "mp4": frozenset({"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}),
    "mov": frozenset({"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_s16be", "pcm_f32le"}),
}
_AUDIO_ENCODE = {"webm": "libopus", "mp4": "aac", "mov": "aac"}
_MUXER = {"webm": "webm", "mov": "mov", "mp4": "mp4"}
_SUFFIX: dict[str, OutputKind] = {".webm": "webm", ".mov": "mov", ".mp4": "mp4", ".m4v": "mp4"}
#: The timing file of a folder of frames (and the mark of a folder cleancut wrote).
TIMESTAMPS = "timestamps.json"
_FRAME_NAME = re.compile(r"^[0-9]{6,}\.png$")


def is_frames_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of frames that cleancut wrote: :data:`TIMESTAMPS` and
    numbered PNGs, nothing else (the only kind of folder an output may replace)."""
    try:
        if path.is_symlink() or not path.is_dir():
            return False
        names = [entry.name for entry in os.scandir(path)]
    except OSError:
        return False
    return TIMESTAMPS in names and all(n == TIMESTAMPS or _FRAME_NAME.match(n) for n in names)


@dataclass(frozen=True)
class Target:
    """Where and how a clip's cut-out is written: ``kind`` from the path (a folder, or a
    path ending in ``/`` or without a suffix, is a folder of PNG frames)."""

    path: Path
    kind: OutputKind


def sweep_stale_frame_folders(folder: Path, *, max_age: float = STALE_TEMP_AGE) -> list[Path]:
    """Remove the temporary frame folders (``.NAME.<pid>.<hex>.cleancut-tmp/``, made by
    :class:`VideoWriter`) that a killed run left in ``folder``: those whose process is gone
    or that are older than ``max_age`` seconds. The folder counterpart of
    :func:`cleancut.io.atomic.sweep_stale_temps`, which takes files only; nothing else is
    touched, and errors are not raised. Returns what was removed."""
    import time

    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
            continue
        parts = name[: -len(TEMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not re.fullmatch(r"[0-9a-f]{12}", parts[2]):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            age = time.time() - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if pid_alive(int(parts[1])) and age < max_age:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def target_for(dst: str | os.PathLike[str]) -> Target:
    text = os.fspath(dst)
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir() or not path.suffix:
        return Target(path, "frames")
    kind = _SUFFIX.get(path.suffix.lower())
    if kind is None:
        raise InvalidOptionError(
            f"cannot write a video to {path.name!r}: use .webm (VP9 with alpha), .mov (ProRes 4444 "
            "with alpha), .mp4 (H.264 on a background colour) or a folder for PNG frames"
        )
    return Target(path, kind)


def _even(rgb: np.ndarray) -> np.ndarray:
    """4:2:0 needs even sides: repeat the last row/column where one is odd."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2)) + ((0, 0),) * (rgb.ndim - 2), mode="edge")


class VideoWriter:
    """Frames in (:meth:`write`: the cut-out's pixels ``[H, W, 4]`` RGBA or ``[H, W]`` gray
    with the source frame's pts), a finished file out (:meth:`close`), or nothing at all
    (:meth:`abort`). ``bg_color`` flattens RGBA onto an opaque colour (an ``.mp4`` always
    is: white unless told). ``audio_from``: the source clip whose audio is carried over."""

    def __init__(
        self,
        target: Target,
        info: VideoInfo,
        *,
        mask: bool = False,
        bg_color: tuple[int, int, int] | None = None,
        audio_from: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        quality: int = 30,
    ) -> None:
        self.target = target
        self.info = info
        self.mask = mask
        self.bg_color = bg_color if bg_color is not None or target.kind != "mp4" or mask else (255, 255, 255)
        self.overwrite = overwrite
        self.quality = quality
        self.count = 0
        self._times: list[int | None] = []
        path = target.path
        if path.exists() or path.is_symlink():
            if not overwrite:
                raise OutputExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
            if target.kind == "frames" and not is_frames_folder(path):
                raise OutputExistsError(
                    f"refusing to replace {path}: it is not a folder of frames cleancut wrote "
                    f"(those hold numbered PNGs and {TIMESTAMPS} only); choose a new folder"
                )
            if target.kind != "frames" and path.is_dir():
                raise OutputExistsError(f"refusing to replace the folder {path} with a video file")
        parent = path.parent
        #: folders made for this output, innermost first: removed again if it fails
        self._made: list[Path] = []
        missing = parent
        while not missing.exists() and missing != missing.parent:
            self._made.append(missing)
            missing = missing.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._remove_made()
            raise OutputWriteError(f"cannot create the folder {parent}: {exc}") from exc
        self.temp = parent / temp_name_for(path.name)
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        self._audio: _AudioCarrier | None = None
        self._audio_from = audio_from
        if target.kind == "frames":
            try:
                self.temp.mkdir()
            except OSError as exc:
                self._remove_made()
                raise OutputWriteError(f"cannot create a folder in {parent}: {exc}") from exc

    # ------------------------------------------------------------------ writing

    def write(self, pixels: np.ndarray, pts: int | None) -> None:
        try:
            if self.target.kind == "frames":
                self._write_png(pixels)
            else:
                self._write_video(pixels, pts)
            self._times.append(pts)
        except OSError as exc:
            raise OutputWriteError(f"cannot write {self.target.path}: {exc}") from exc
        self.count += 1

    def _flat(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.ndim == 3 and pixels.shape[2] == 4 and self.bg_color is not None:
            return pipeline.flatten(pixels, self.bg_color)
        return pixels

    def _write_png(self, pixels: np.ndarray) -> None:
        from PIL import Image

        Image.fromarray(self._flat(pixels)).save(self.temp / f"{self.count:06d}.png", compress_level=3)

    def _open(self, width: int, height: int) -> None:
        import av

        kind = self.target.kind
        alpha = not self.mask and self.bg_color is None
        try:
            self._container = av.open(str(self.temp), mode="w", format=_MUXER[kind])
            rate = self.info.rate or Fraction(25)
            if kind == "webm":
                stream = self._container.add_stream("libvpx-vp9", rate=rate)
                stream.pix_fmt = "yuva420p" if alpha else "yuv420p"
                # cpu-used 4: the fast end of libvpx's "good" range; benchmarks/video_speed.py
                # measures it against the default (time, bytes, PSNR; figures in the README)
                stream.options = {
                    "crf": str(self.quality),
                    "b": "0",
                    "row-mt": "1",
                    "deadline": "good",
                    "cpu-used": "4",
                }
                if alpha:
                    stream.options["auto-alt-ref"] = "0"
            elif kind == "mov":
                stream = self._container.add_stream("prores_ks", rate=rate)
                stream.pix_fmt = "yuva444p10le" if alpha else "yuv422p10le"
                stream.options = {"profile": "4444" if alpha else "hq"}
                if alpha:
                    stream.options["alpha_bits"] = "16"
            else:
                stream = self._container.add_stream("libx264", rate=rate)
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(max(0, self.quality - 12)), "preset": "veryfast"}
        except (av.error.FFmpegError, ValueError) as exc:
            raise UnsupportedVideoError(f"this FFmpeg build cannot write {kind}: {exc}") from exc
        stream.width, stream.height = width, height
        stream.time_base = self.info.time_base
        stream.codec_context.time_base = self.info.time_base
        self._stream = stream
        self._size = (width, height)
        if self._audio_from is not None and self.info.has_audio:
            self._audio = _AudioCarrier(self._audio_from, self._container, kind)

    def _write_video(self, pixels: np.ndarray, pts: int | None) -> None:
        import av

        px = self._flat(pixels)
        if self.target.kind == "mp4" or (self.mask or self.bg_color is not None):
            px = _even(px)
        if self._stream is None:
            self._open(px.shape[1], px.shape[0])
        assert self._size is not None
        if (px.shape[1], px.shape[0]) != self._size:  # framing changed the size: keep the first
            import cv2

            px = cv2.resize(px, self._size, interpolation=cv2.INTER_AREA)
        fmt = "gray" if px.ndim == 2 else "rgba" if px.shape[2] == 4 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(px), format=fmt)
        frame.pts = pts if pts is not None else self.count
        frame.time_base = self.info.time_base
        if self._audio is not None:
            self._audio.advance(float(frame.pts * self.info.time_base))
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise OutputWriteError(
                f"encoding {self.target.path.name} failed at frame {self.count}: {exc}"
            ) from exc

    # ------------------------------------------------------------------ end

    def close(self) -> Path:
        """Flush, then publish the output under its name."""
        import av

        try:
            if self._container is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                if self._audio is not None:
                    self._audio.advance(None)
                self._container.close()
                self._container = None
            elif self.target.kind != "frames" or self.count == 0:
                raise OutputWriteError(f"no frame to write to {self.target.path}")
            dst = self.target.path
            if self.target.kind == "frames":
                self._write_timestamps()
                self._publish_folder(dst)
            else:
                self.temp.replace(dst)
        except (OSError, av.error.FFmpegError) as exc:
            self.abort()
            raise OutputWriteError(f"cannot finish {self.target.path}: {exc}") from exc
        except BaseException:
            self.abort()
            raise
        return self.target.path

    def _write_timestamps(self) -> None:
        """:data:`TIMESTAMPS` in the folder: the rate, the time base and each frame's time
        (frames without a pts are placed at the nominal rate)."""
        tb, rate = self.info.time_base, self.info.rate
        step = 1 / float(rate or 25)
        frames = [
            {
                "file": f"{i:06d}.png",
                "pts": pts,
                "time": round(float(pts * tb) if pts is not None else i * step, 6),
            }
            for i, pts in enumerate(self._times)
        ]
        doc = {
            "frame_rate": None if rate is None else f"{rate.numerator}/{rate.denominator}",
            "fps": None if rate is None else round(float(rate), 6),
            "time_base": f"{tb.numerator}/{tb.denominator}",
            "frames": frames,
        }
        (self.temp / TIMESTAMPS).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")

    def _publish_folder(self, dst: Path) -> None:
        """Rename the finished folder into place; an old frames folder (``overwrite``) is
        moved aside first and removed only once the new one is in place."""
        old: Path | None = None
        if dst.exists() or dst.is_symlink():
            if not self.overwrite:
                raise OutputExistsError(f"{dst} exists; pass overwrite=True to replace it")
            if not is_frames_folder(dst):
                raise OutputExistsError(
                    f"refusing to replace {dst}: it is not a folder of frames cleancut wrote"
                )
            old = dst.parent / temp_name_for(dst.name)
            dst.replace(old)
        try:
            self.temp.replace(dst)
        except OSError:
            if old is not None:
                old.replace(dst)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _remove_made(self) -> None:
        for folder in self._made:  # innermost first; stops at one that is not empty
            try:
                folder.rmdir()
            except OSError:
                return

    def abort(self) -> None:
        """Drop everything written so far (and the folders made for it)."""
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None
        if self.temp.is_dir():
            shutil.rmtree(self.temp, ignore_errors=True)
        else:
            self.temp.unlink(missing_ok=True)
        self._remove_made()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if exc is not None:
            self.abort()


class _AudioCarrier:
    """The source's first audio stream, interleaved with the video as it is written: packets
    up to the time of the next video frame are copied (or re-encoded) before it."""

    def __init__(self, src: str | os.PathLike[str], out: Any, kind: OutputKind) -> None:
        import av

        self.input = av.open(os.fspath(src), mode="r")
        self.in_stream = self.input.streams.audio[0]
        self.copy = self.in_stream.codec_context.name in _AUDIO_COPY[kind]
        if self.copy:
            self.out_stream = out.add_stream_from_template(self.in_stream)
        else:
            ctx = self.in_stream.codec_context
            rate = 48000 if kind == "webm" else ctx.sample_rate
            self.out_stream = out.add_stream(_AUDIO_ENCODE[kind], rate=rate)
            self.out_stream.layout = "stereo" if ctx.layout.nb_channels >= 2 else "mono"
        self.out = out
        self.packets = self.input.demux(self.in_stream)
        self.done = False

    def advance(self, until: float | None) -> None:
        """Carry audio up to ``until`` seconds (``None``: all that is left, then flush)."""
        import av

        while not self.done:
            try:
                packet = next(self.packets)
            except (StopIteration, av.error.FFmpegError):
                self._end()
                return
            if packet.dts is None and packet.size == 0:
                continue
            self._put(packet)
            if (
                until is not None
                and packet.pts is not None
                and packet.time_base is not None
                and float(packet.pts * packet.time_base) >= until
            ):
                return

    def _put(self, packet: Any) -> None:
        if self.copy:
            packet.stream = self.out_stream
            self.out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            for out in self.out_stream.encode(frame):
                self.out.mux(out)

    def _end(self) -> None:
        self.done = True
        if not self.copy:
            for out in self.out_stream.encode(None):
                self.out.mux(out)
        self.close()

    def close(self) -> None:
        try:
            self.input.close()
        except Exception:
            pass
