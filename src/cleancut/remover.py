"""``Remover``: one loaded model, configured by one :class:`~cleancut.options.EngineOptions`
(what runs) and one :class:`~cleancut.config.Settings` (cache, network, pixel limit).

It owns the sessions; the stages themselves (:mod:`cleancut.stages`) are plain functions it
calls: decode → preprocess → inference → postprocess → compose (→ encode on demand), each
reporting ``compute:<stage>`` progress and checking the cancel signal before it runs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import pipeline, stages
from .config import Settings
from .cutout import Cutout, check_options, make_cutout
from .errors import InvalidOptionError
from .inference import runtime
from .inference.runtime import MODES, Backend, Device, Mode, Session, normalize_backend, normalize_device
from .io.decode import DecodedImage, ImageInput
from .models import DEFAULT_MODEL, ModelSpec, resolve_model
from .options import DEFAULT_PNG_LEVEL, CutOptions, EngineOptions
from .passes import Pass, normalize_quality_mode
from .progress import CancelSignal, ProgressCallback, check_cancel, stage
from .stages import make_mask

if TYPE_CHECKING:
    import os

    from .edges import EdgeOptions
    from .framing import Framing
    from .models.families import Recipe
    from .models.prepare import Prepared

# Cutout, check_options, make_cutout, make_mask and DEFAULT_PNG_LEVEL live in cutout, stages
# and options; they stay importable from here, where callers have long found them.
__all__ = ["DEFAULT_PNG_LEVEL", "Cutout", "Remover", "check_options", "make_cutout", "make_mask"]

log = logging.getLogger(__name__)


class Remover:
    """One model, loaded once and reused; safe to share between threads.

    >>> remover = Remover("isnet_fp16")            # doctest: +SKIP
    >>> remover.remove("photo.jpg").save("cut.png")  # doctest: +SKIP
    >>> Remover("birefnet-general-lite")            # doctest: +SKIP
    >>> Remover("./my.onnx", model_family="birefnet")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | ModelSpec = DEFAULT_MODEL,
        *,
        model_family: str | None = None,
        model_sha256: str | None = None,
        device: str = "auto",
        backend: str = "auto",
        strict: bool = False,
        threads: int | None = None,
        settings: Settings | None = None,
        scheduling: str = "latency",
    ) -> None:
        """``model`` is a registry name (``cleancut models list``), a path to an ONNX file of
        your own, or an ``https://`` URL of one; ``model_family`` names such a file's family
        (``birefnet``, ``isnet``, …; else its graph's ``cleancut.family`` metadata) and
        ``model_sha256`` pins it (a URL without one is fetched over https only and its
        SHA-256 recorded on first use).
        ``model``, ``model_family``, ``model_sha256``, ``device``, ``backend``, ``strict``
        and ``threads`` are the fields of
        :class:`~cleancut.options.EngineOptions`, spelled out for convenience
        (:meth:`from_options` takes that value whole). ``settings``: cache, model source,
        offline and pixel limit (default: :meth:`Settings.from_env`). ``scheduling``:
        ``latency`` (one image at a time) or ``throughput`` (folder batches: several images in
        flight, see :data:`cleancut.inference.runtime.Mode`)."""
        self.spec = resolve_model(model, family=model_family, sha256=model_sha256)
        self.settings = settings if settings is not None else Settings.from_env()
        self.device: Device = normalize_device(device)
        self.backend: Backend = normalize_backend(backend)
        self.backend_reason: str | None = None
        self.strict = strict
        self.threads = runtime.cap_threads(threads)  # refused below 1, capped at the usable CPUs
        if scheduling not in MODES:
            raise InvalidOptionError(f"scheduling must be one of {', '.join(MODES)}, got {scheduling!r}")
        self.scheduling: Mode = scheduling
        self._session: Session | None = None
        #: sessions for passes at other input sizes than the model's own (quality modes)
        self._sized: dict[tuple[int, int], Session] = {}
        self._prepared: Prepared | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def from_options(
        cls, engine: EngineOptions, *, settings: Settings | None = None, scheduling: str = "latency"
    ) -> Remover:
        """A remover for one :class:`~cleancut.options.EngineOptions` value."""
        return cls(**dataclasses.asdict(engine), settings=settings, scheduling=scheduling)

    @property
    def engine(self) -> EngineOptions:
        """What runs, as the one engine options value (model name and device normalised)."""
        custom = self.spec.custom
        return EngineOptions(
            model=str(self.spec.path or self.spec.url) if custom else self.spec.name,
            model_family=self.spec.family if custom else None,
            model_sha256=self.spec.sha256 if custom else None,
            device=self.device,
            backend=self.backend,
            strict=self.strict,
            threads=self.threads,
        )

    # ------------------------------------------------------------------ loading

    def load(
        self, *, progress: ProgressCallback | None = None, cancel: CancelSignal | None = None
    ) -> Remover:
        """Fetch (if needed) and load the model now rather than on first use."""
        self._get_session(progress, cancel)
        return self

    def _gpu_wanted(self) -> bool:
        from .inference.runtime import gpu_providers_present

        return self.device != "cpu" and self.backend != "openvino" and bool(gpu_providers_present())

    def prepared(
        self, progress: ProgressCallback | None = None, cancel: CancelSignal | None = None
    ) -> Prepared:
        """The model's file fetched and verified, its graph prepared, its family's recipe
        read (no session yet)."""
        if self._prepared is not None:
            return self._prepared
        with self._load_lock:
            if self._prepared is None:
                from .models.store import ensure_model

                check_cancel(cancel, "loading the model")
                cancel_fn = None if cancel is None else (lambda: _fired(cancel))
                self._prepared = ensure_model(
                    self.spec, self.settings, progress, cancel_fn, gpu=self._gpu_wanted()
                )
        return self._prepared

    @property
    def recipe(self) -> Recipe:
        """How the model is fed and read: its family's recipe for its graph
        (:class:`cleancut.models.families.Recipe`). Prepares the model if needed."""
        return self.prepared().recipe

    def _get_session(self, progress: ProgressCallback | None, cancel: CancelSignal | None) -> Session:
        if self._session is not None:
            return self._session
        prepared = self.prepared(progress, cancel)
        with self._load_lock:
            if self._session is None:
                from .inference import backends
                from .inference.runtime import get_session

                check_cancel(cancel, "loading the model")
                choice = backends.resolve(
                    self.backend,
                    prepared,
                    self.settings,
                    device=self.device,
                    strict=self.strict,
                    threads=self.threads,
                    progress=progress,
                )
                self._session = get_session(
                    prepared.path,
                    backend=choice.backend,
                    device=self.device,
                    strict=self.strict,
                    threads=self.threads,
                    cache_dir=self.settings.cache_dir,
                    mode=self.scheduling,
                )
                self.backend_reason = choice.reason
        return self._session

    def session_for(
        self, size: int | Pass, progress: ProgressCallback | None = None, cancel: CancelSignal | None = None
    ) -> Session:
        """The session for a pass (or a ``size``² input): the model's own at its input size,
        else the same weights on a resized graph (built once, cached beside the other graphs)."""
        base = self._get_session(progress, cancel)
        recipe = self.recipe
        shape = size.shape if isinstance(size, Pass) else (size, size)
        if shape == recipe.size:
            return base
        sess = self._sized.get(shape)
        if sess is not None:
            return sess
        if shape[0] != shape[1] or recipe.height != recipe.width:
            raise InvalidOptionError(f"this model runs at {recipe.width}×{recipe.height} only")
        with self._load_lock:
            sess = self._sized.get(shape)
            if sess is None:
                from .inference.runtime import get_session
                from .models.graph import sized_graph

                sess = get_session(
                    sized_graph(self.prepared().path, shape[0], self.settings, base=recipe.width),
                    backend=base.backend,  # type: ignore[arg-type]
                    device=self.device,
                    strict=self.strict,
                    threads=self.threads,
                    cache_dir=self.settings.cache_dir,
                    mode=self.scheduling,
                )
                self._sized[shape] = sess
        return sess

    @property
    def session(self) -> Session:
        return self._get_session(None, None)

    def describe(self) -> dict[str, Any]:
        """What runs: model, backend (and why), provider actually in use, threads."""
        info = {"model": self.spec.name, "family": self.recipe.family, **self.session.describe()}
        info["backend_reason"] = self.backend_reason
        return info

    # ------------------------------------------------------------------ stages

    def decode(self, image: ImageInput) -> DecodedImage:
        return stages.decode(image, max_pixels=self.settings.max_pixels)

    def run_pass(self, p: Pass, x: np.ndarray) -> np.ndarray:
        """One pass's input through the session for its size (:func:`cleancut.stages.infer`)."""
        return self.session_for(p).run(x)

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
            mask = make_mask(y, pixels, edges, self.recipe)
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
        for p in self.recipe.passes(mode):  # load every pass's session before the first runs
            self.session_for(p, progress, cancel)
        return stages.infer(
            pixels,
            mode,
            self.run_pass,
            recipe=self.recipe,
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

        ``mode``: ``default`` (one 1024² pass, the reference), ``best`` (four passes
        averaged: 1024² and 768², each mirrored, about 3.1× the network time, see
        :mod:`cleancut.passes`)
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
        output_type = pipeline.normalize_output_type(options.type)
        check_options(output_type, options.edges, options.framing)
        mode = normalize_quality_mode(options.mode)
        options = replace(options.loaded(self.settings.max_pixels), type=output_type, mode=mode)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        with stage("decode", progress, cancel):
            decoded = self.decode(image)
        timings["decode"] = time.perf_counter() - t0
        stages.check_canvas(decoded, options.framing, max_pixels=self.settings.max_pixels)
        y = self.predict(decoded.pixels, mode=mode, progress=progress, cancel=cancel, timings=timings)
        cut = stages.finish(
            decoded,
            y,
            options,
            recipe=self.recipe,
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


def _fired(cancel: CancelSignal) -> bool:
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())
