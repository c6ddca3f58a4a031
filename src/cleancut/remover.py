"""``Remover``: one loaded model, and the :class:`Cutout` it returns.

The pipeline per image: decode → preprocess → inference → postprocess (the mask, with the
optional :class:`~cleancut.edges.EdgeOptions`) → compose (edge colours, then the optional
:class:`~cleancut.framing.Framing`: background, crop, canvas) → (encode on demand).
Each stage reports ``compute:<stage>`` progress and checks the cancel signal before it runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import io as codecs
from . import pipeline
from .config import Settings
from .errors import InvalidOptionError
from .inference.runtime import MODES, Backend, Device, Mode, Session, normalize_backend, normalize_device
from .io.decode import DecodedImage, ImageInput
from .io.formats import OutputFormat
from .models import DEFAULT_MODEL, INPUT_SIZE, ModelSpec, resolve_model
from .options import DEFAULT_PNG_LEVEL, CutOptions, EngineOptions
from .passes import Pass
from .pipeline import OutputType
from .progress import CancelSignal, ProgressCallback, check_cancel, stage

if TYPE_CHECKING:
    from .edges import EdgeOptions
    from .framing import Framing

__all__ = ["Cutout", "Remover", "check_options", "make_cutout", "make_mask"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Cutout:
    """The result of every cleancut function.

    ``pixels``: ``[H, W, 4]`` RGBA for ``foreground``/``background``, ``[H, W]`` gray for
    ``mask``. ``mask``: the subject mask ``[H, W]`` uint8 (255 = subject), framed like the
    pixels (full resolution unless cropped or capped). ``icc_profile``: the source's RGB
    profile, carried to encoded outputs. ``timings``: seconds per stage. ``box``: the part
    of the photo the output shows, ``(left, top, right, bottom)`` in the photo's pixels
    (right and bottom exclusive): the crop box with ``crop``, else the whole photo.
    """

    pixels: np.ndarray
    mask: np.ndarray
    type: OutputType
    icc_profile: bytes | None = None
    timings: dict[str, float] = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def to_pil(self, bg_color: str | tuple[int, int, int] | None = None) -> Any:
        """A ``PIL.Image.Image`` (RGBA, or L for masks; RGB when ``bg_color`` is given)."""
        from PIL import Image

        img = Image.fromarray(self._pixels_for(None, bg_color))
        if self.icc_profile and img.mode in ("RGB", "RGBA"):
            img.info["icc_profile"] = self.icc_profile
        return img

    def _pixels_for(
        self, fmt: OutputFormat | None, bg_color: str | tuple[int, int, int] | None
    ) -> np.ndarray:
        px = self.pixels
        if px.ndim == 3 and (bg_color is not None or fmt == "jpeg"):
            px = pipeline.flatten(px, pipeline.parse_color(bg_color))
        return px

    def to_bytes(
        self,
        format: str = "png",
        *,
        quality: float = 0.8,
        bg_color: str | tuple[int, int, int] | None = None,
        png_compress_level: int = DEFAULT_PNG_LEVEL,
    ) -> bytes:
        """Encode: ``png`` (default), ``webp``, ``jpeg`` (flattened on ``bg_color``, white by
        default), or raw ``rgba8`` / ``alpha8``. ``quality`` 0..1 for JPEG and WebP (1 is
        lossless WebP). ``bg_color`` composites onto an opaque colour in any format."""
        fmt = codecs.normalize_format(format)
        return codecs.encode(
            self._pixels_for(fmt, bg_color),
            fmt,
            quality=quality,
            icc_profile=self.icc_profile,
            png_compress_level=png_compress_level,
        )

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        quality: float = 0.8,
        bg_color: str | tuple[int, int, int] | None = None,
        overwrite: bool = False,
        png_compress_level: int = DEFAULT_PNG_LEVEL,
    ) -> Path:
        """Encode and write atomically; the format follows ``format`` or the file extension."""
        fmt = format or codecs.format_from_path(path) or "png"
        data = self.to_bytes(fmt, quality=quality, bg_color=bg_color, png_compress_level=png_compress_level)
        return codecs.write_atomic(path, data, overwrite=overwrite)


class Remover:
    """One IS-Net model, loaded once and reused; safe to share between threads.

    >>> remover = Remover("isnet_fp16")            # doctest: +SKIP
    >>> remover.remove("photo.jpg").save("cut.png")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | ModelSpec = DEFAULT_MODEL,
        *,
        device: str = "auto",
        backend: str = "auto",
        strict: bool = False,
        threads: int | None = None,
        settings: Settings | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        model_url: str | None = None,
        offline: bool | None = None,
        max_pixels: int | None = None,
        scheduling: str = "latency",
    ) -> None:
        self.spec = resolve_model(model)
        base = settings if settings is not None else Settings.from_env()
        self.settings = base.with_(
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
            model_base_url=model_url,
            offline=offline,
            max_pixels=max_pixels,
        )
        self.device: Device = normalize_device(device)
        self.backend: Backend = normalize_backend(backend)
        self.backend_reason: str | None = None
        self.strict = strict
        if threads is not None and threads < 1:
            raise InvalidOptionError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        if scheduling not in MODES:
            raise InvalidOptionError(f"scheduling must be one of {', '.join(MODES)}, got {scheduling!r}")
        #: ``latency`` (one image at a time) or ``throughput`` (folder batches: several
        #: images in flight, see runtime.Mode).
        self.scheduling: Mode = scheduling
        self._session: Session | None = None
        #: sessions for passes at other input sizes than 1024² (quality modes), by size
        self._sized: dict[int, Session] = {}
        self._graph: Path | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def from_options(
        cls, engine: EngineOptions, *, settings: Settings | None = None, scheduling: str = "latency"
    ) -> Remover:
        """A remover for the one engine options type (:class:`~cleancut.options.EngineOptions`)."""
        return cls(
            engine.model,
            device=engine.device,
            backend=engine.backend,
            strict=engine.strict,
            threads=engine.threads,
            settings=settings,
            scheduling=scheduling,
        )

    # ------------------------------------------------------------------ loading

    def load(
        self, *, progress: ProgressCallback | None = None, cancel: CancelSignal | None = None
    ) -> Remover:
        """Fetch (if needed) and load the model now rather than on first use."""
        self._get_session(progress, cancel)
        return self

    def _get_session(self, progress: ProgressCallback | None, cancel: CancelSignal | None) -> Session:
        if self._session is not None:
            return self._session
        with self._load_lock:
            if self._session is None:
                from .inference import backends
                from .inference.runtime import get_session, gpu_providers_present

                check_cancel(cancel, "loading the model")
                cancel_fn = None if cancel is None else (lambda: _fired(cancel))
                choice = backends.resolve(
                    self.backend,
                    self.spec,
                    self.settings,
                    device=self.device,
                    strict=self.strict,
                    threads=self.threads,
                    progress=progress,
                )
                gpu = (
                    choice.backend == "onnxruntime" and self.device != "cpu" and bool(gpu_providers_present())
                )
                graph = backends.graph_for(
                    choice.backend, self.spec, self.settings, progress, cancel_fn, gpu=gpu
                )
                self._session = get_session(
                    graph,
                    backend=choice.backend,
                    device=self.device,
                    strict=self.strict,
                    threads=self.threads,
                    cache_dir=self.settings.cache_dir,
                    mode=self.scheduling,
                )
                self._graph = graph
                self.backend_reason = choice.reason
        return self._session

    def session_for(
        self, size: int, progress: ProgressCallback | None = None, cancel: CancelSignal | None = None
    ) -> Session:
        """The session for a ``size``² input: the model's own at 1024², else the same
        weights on a resized graph (built once, cached beside the other graphs)."""
        base = self._get_session(progress, cancel)
        if size == INPUT_SIZE:
            return base
        sess = self._sized.get(size)
        if sess is not None:
            return sess
        with self._load_lock:
            sess = self._sized.get(size)
            if sess is None:
                from .inference.runtime import get_session
                from .models.graph import sized_graph

                assert self._graph is not None
                sess = get_session(
                    sized_graph(self._graph, size, self.settings),
                    backend=base.backend,  # type: ignore[arg-type]
                    device=self.device,
                    strict=self.strict,
                    threads=self.threads,
                    cache_dir=self.settings.cache_dir,
                    mode=self.scheduling,
                )
                self._sized[size] = sess
        return sess

    @property
    def exact_resize(self) -> bool:
        """Resize with the exact port of the reference (slow) only where it matters: the
        quantised model's output can jump on a one-level input change; the float models'
        masks move by 0.005/255 with OpenCV's resize on the same grid."""
        return self.spec.precision == "quint8"

    @property
    def session(self) -> Session:
        return self._get_session(None, None)

    def describe(self) -> dict[str, Any]:
        """What runs: model, backend (and why), provider actually in use, threads."""
        info = {"model": self.spec.name, **self.session.describe()}
        info["backend_reason"] = self.backend_reason
        return info

    # ------------------------------------------------------------------ stages

    def decode(self, image: ImageInput) -> DecodedImage:
        from . import stages

        return stages.decode(image, max_pixels=self.settings.max_pixels)

    def run_pass(self, p: Pass, x: np.ndarray) -> np.ndarray:
        """One pass's input through the session for its size (:func:`cleancut.stages.infer`)."""
        return self.session_for(p.size).run(x)

    def infer(
        self,
        x: np.ndarray,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelSignal | None = None,
    ) -> np.ndarray:
        """The network alone: preprocessed ``[N, 3, S, S]`` → ``[N, 1, S, S]`` in 0..1."""
        session = self._get_session(progress, cancel)
        with stage("inference", progress, cancel):
            return session.run(x)

    def predict_mask(
        self,
        pixels: np.ndarray,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelSignal | None = None,
        timings: dict[str, float] | None = None,
        edges: EdgeOptions | None = None,
        mode: str = "default",
    ) -> np.ndarray:
        """RGB(A) uint8 ``[H, W, C]`` → subject mask ``[H, W]`` uint8 at full resolution
        (refined and cleaned by ``edges`` when given). ``mode``: the quality mode
        (``fast``, ``default`` or ``best``, see :mod:`cleancut.passes`)."""
        t = timings if timings is not None else {}
        y = self.predict(pixels, mode=mode, progress=progress, cancel=cancel, timings=t)
        t2 = time.perf_counter()
        with stage("postprocess", progress, cancel):
            mask = make_mask(y, pixels, edges, exact=self.exact_resize)
        t.update(postprocess=time.perf_counter() - t2)
        return mask

    def predict(
        self,
        pixels: np.ndarray,
        *,
        mode: str = "default",
        progress: ProgressCallback | None = None,
        cancel: CancelSignal | None = None,
        timings: dict[str, float] | None = None,
    ) -> np.ndarray:
        """RGB(A) uint8 ``[H, W, C]`` → the network's output ``[1, 1, S, S]`` in 0..1 for
        the quality ``mode`` (several passes averaged for ``best``)."""
        from . import stages
        from .passes import passes_for

        for p in passes_for(mode):  # load every pass's session before the first runs
            self.session_for(p.size, progress, cancel)
        return stages.infer(
            pixels,
            mode,
            self.run_pass,
            exact=self.exact_resize,
            progress=progress,
            cancel=cancel,
            timings=timings,
        )

    # ------------------------------------------------------------------ public

    def remove(
        self,
        image: ImageInput,
        *,
        type: str = "foreground",
        edges: EdgeOptions | None = None,
        framing: Framing | None = None,
        mode: str = "default",
        progress: ProgressCallback | None = None,
        cancel: CancelSignal | None = None,
    ) -> Cutout:
        """Cut out ``image``: ``type`` is ``foreground`` (default), ``background`` or ``mask``.

        ``mode``: ``default`` (one 1024² pass, the reference), ``best`` (three passes
        averaged: mirrored and 1280², about 3.6× the network time, see :mod:`cleancut.passes`)
        or ``fast`` (one 768² pass).

        ``edges``: how the mask and its edge colours are made (``None``: the defaults of
        :class:`~cleancut.edges.EdgeOptions`, the reference's bilinear mask with blur-fusion
        decontamination; ``EdgeOptions(decontaminate="none")`` keeps the photo's own colours).
        ``framing``: background, crop, square canvas, size cap (``None``: the transparent
        cut-out at full size). Both are checked before any work starts; a background image is
        decoded once, up front.
        """
        options = CutOptions(
            type=pipeline.normalize_output_type(type),
            edges=edges,
            framing=framing,
            mode=mode,  # type: ignore[arg-type]  # checked by cut(), after the other options
        )
        return self.cut(image, options, progress=progress, cancel=cancel)

    def cut(
        self,
        image: ImageInput,
        options: CutOptions,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelSignal | None = None,
    ) -> Cutout:
        """Cut out ``image`` as ``options`` say (:class:`~cleancut.options.CutOptions`, the
        one options type of every front; its encoding fields apply to
        :func:`cleancut.stages.encode`, e.g. ``stages.encode(remover.cut(photo, opts), opts)``).
        The options are checked before any work starts."""
        from . import stages
        from .passes import normalize_quality_mode

        output_type = pipeline.normalize_output_type(options.type)
        check_options(output_type, options.edges, options.framing)
        mode = normalize_quality_mode(options.mode)
        options = replace(options.loaded(self.settings.max_pixels), type=output_type, mode=mode)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        with stage("decode", progress, cancel):
            decoded = self.decode(image)
        timings["decode"] = time.perf_counter() - t0
        y = self.predict(decoded.pixels, mode=mode, progress=progress, cancel=cancel, timings=timings)
        cut = stages.finish(
            decoded,
            y,
            options,
            exact=self.exact_resize,
            max_pixels=self.settings.max_pixels,
            progress=progress,
            cancel=cancel,
            timings=timings,
        )
        cut.timings.update(timings)
        return cut

    def segment(
        self,
        image: ImageInput,
        *,
        edges: EdgeOptions | None = None,
        framing: Framing | None = None,
        mode: str = "default",
        progress: ProgressCallback | None = None,
        cancel: CancelSignal | None = None,
    ) -> Cutout:
        """The subject mask as a gray :class:`Cutout` (``type == "mask"``); ``framing`` may
        crop, square and cap it (backgrounds and shadows do not apply to a mask)."""
        return self.remove(
            image, type="mask", edges=edges, framing=framing, mode=mode, progress=progress, cancel=cancel
        )

    def __repr__(self) -> str:
        state = "loaded" if self._session is not None else "not loaded"
        return f"Remover(model={self.spec.name!r}, backend={self.backend!r}, device={self.device!r}, {state})"


def check_options(output_type: OutputType, edges: EdgeOptions | None, framing: Framing | None) -> None:
    """Refuse option combinations that cannot work, before any work is done."""
    if edges is not None:
        edges.validate()
    if framing is None:
        return
    framing.validate()
    if output_type == "mask" and (framing.opaque or framing.shadow):
        raise InvalidOptionError(
            "a background or shadow needs a cut-out: use type foreground (or background); "
            "a mask output takes only crop, square, padding and max_size"
        )
    if output_type == "background" and framing.shadow:
        raise InvalidOptionError("a shadow needs a subject: use it with type foreground, not background")


def _edges_or_default(edges: EdgeOptions | None) -> EdgeOptions:
    """``None`` means the defaults, :class:`~cleancut.edges.EdgeOptions()`: the reference's
    mask (bilinear) with blur-fusion colour decontamination."""
    if edges is not None:
        return edges
    from .edges import EdgeOptions

    return EdgeOptions()


def make_mask(y: np.ndarray, pixels: np.ndarray, edges: EdgeOptions | None, *, exact: bool) -> np.ndarray:
    """Network output → full-resolution mask through :func:`cleancut.edges.make_mask`
    (``edges=None``: the default :class:`~cleancut.edges.EdgeOptions`)."""
    from . import edges as edges_mod

    return edges_mod.make_mask(y, pixels, _edges_or_default(edges), exact=exact)


def make_cutout(
    pixels: np.ndarray,
    mask: np.ndarray,
    output_type: OutputType,
    icc_profile: bytes | None = None,
    *,
    edges: EdgeOptions | None = None,
    framing: Framing | None = None,
    max_pixels: int = 100_000_000,
) -> Cutout:
    """The compose stage, shared by :class:`Remover`, the batch runner and the server: the
    output pixels for ``output_type`` from the photo and its full-resolution mask — edge
    colours (``edges``), then background and framing (``framing``)."""
    h, w = mask.shape
    if framing is not None and framing.is_identity:
        framing = None
    if output_type == "mask":
        if framing is None:
            return Cutout(mask, mask, "mask", icc_profile, box=(0, 0, w, h))
        from .framing import frame_mask

        framed_mask, geo = frame_mask(mask, framing)
        return Cutout(framed_mask, framed_mask, "mask", icc_profile, box=geo.box)
    invert = output_type == "background"
    colours = pixels
    edges = _edges_or_default(edges)
    if edges.decontaminate != "none":
        from . import edges as edges_mod

        estimate = edges_mod.background_colors if invert else edges_mod.foreground_colors
        colours = estimate(pixels, mask, edges)
    if framing is None:
        return Cutout(
            pipeline.apply_mask(colours, mask, invert=invert),
            mask,
            output_type,
            icc_profile,
            box=(0, 0, w, h),
        )
    from .framing import apply

    framed = apply(colours, mask, framing, photo=pixels, invert=invert, max_pixels=max_pixels)
    return Cutout(framed.pixels, framed.mask, output_type, icc_profile, box=framed.geometry.box)


def _fired(cancel: CancelSignal) -> bool:
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())
