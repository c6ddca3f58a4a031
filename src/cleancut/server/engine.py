"""The models the server runs, and one cut-out split into stages for the job queue.

One :class:`~cleancut.Remover` per loaded model, created once and shared by every request
(its session is thread-safe). A request runs as three stages: decode + preprocess (and an
uploaded background image) on the I/O pool, the network on the inference pool, postprocess
+ compose (edges, background, framing) + encode on the I/O pool.
When the backend is ONNX Runtime, the network is called here with ``RunOptions`` so that a
request whose deadline passes terminates its run in progress instead of holding a worker;
other backends (OpenVINO) stop at the next stage boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from .. import stages
from ..errors import CancelledError, CleancutError, ImageError, InvalidOptionError
from ..inference.runtime import Session, default_threads
from ..io.decode import DecodedImage
from ..io.formats import mime_type
from ..models.families import Recipe
from ..passes import Pass
from ..remover import Remover
from .jobqueue import Slot
from .options import RemoveOptions
from .settings import ServerSettings

__all__ = ["Engine", "Result"]

log = logging.getLogger(__name__)

LoadState = Literal["loading", "ready", "failed"]


@dataclass
class Result:
    body: bytes
    media_type: str
    width: int
    height: int
    timings: dict[str, float] = field(default_factory=dict)
    #: The part of the photo the output shows (left, top, right, bottom): the crop box.
    box: tuple[int, int, int, int] | None = None


@dataclass
class _Network:
    """A loaded model as the inference stage calls it: a run that the request's deadline
    terminates mid-way where the backend can (ONNX Runtime's ``RunOptions``); other
    backends (OpenVINO) stop at the next stage boundary."""

    session: Session

    def run(self, x: np.ndarray, slot: Slot) -> np.ndarray:
        try:
            return self.session.run(x, stop=slot.on_cancel)
        except Exception as exc:
            if slot.cancel.is_set():  # terminated on purpose: not an error of the model
                raise CancelledError("inference terminated: the request ran out of time") from exc
            raise


class Engine:
    """Loads the configured models once, then cuts out images for requests."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        threads = settings.threads or max(1, default_threads() // settings.workers)
        core = settings.core.with_(max_pixels=settings.max_pixels)
        self.removers: dict[str, Remover] = {
            key: Remover(
                settings.spec(key), device=settings.device, backend=settings.backend, threads=threads,
                settings=core,
            )
            for key in settings.models
        }  # fmt: skip
        self._networks: dict[str, _Network] = {}
        self.load_seconds: dict[str, float] = {}  # per model, for /metrics
        self._state: LoadState = "loading"
        self._error: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading

    @property
    def state(self) -> LoadState:
        return self._state

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def models(self) -> tuple[str, ...]:
        return self.settings.models

    def load(self) -> None:
        """Fetch (if needed) and load every model. Errors are kept for ``/readyz``."""
        name = ""
        try:
            for name, remover in self.removers.items():
                started = time.perf_counter()
                remover.load()
                self._networks[name] = _Network(remover.session)
                self.load_seconds[name] = time.perf_counter() - started
                log.info(
                    "model %s loaded in %.1f s (%s, %s)",
                    name,
                    self.load_seconds[name],
                    remover.session.backend,
                    remover.session.provider,
                )
        except CleancutError as exc:
            with self._lock:  # which model, when there are several
                self._state, self._error = "failed", f"{name}: {exc}" if len(self.removers) > 1 else str(exc)
            log.error("could not load the model %s: %s", name, exc)
            return
        except Exception as exc:  # a bug or an ORT failure: keep serving, report it
            with self._lock:
                self._state, self._error = "failed", f"{name}: {type(exc).__name__}: {exc}"
            log.exception("could not load the model")
            return
        with self._lock:
            self._state = "ready"

    def recipe_of(self, key: str) -> Recipe | None:
        """The recipe of a loaded model (``None`` until it is loaded: reading it may fetch)."""
        return self.removers[key].recipe if key in self._networks else None

    def output_of(self, key: str) -> str | None:
        """The name of the final map among the model file's outputs (``None`` until loaded)."""
        if key not in self._networks:
            return None
        prepared = self.removers[key].prepared()
        return prepared.family.output_name(prepared.info)

    def check_local_models(self) -> None:
        """Read and check every model that is a local file (its checksum, its family, the
        graph's input and output) now: what needs no network fails before the port is bound
        (``cleancut serve`` exits 2). Published models and URLs are fetched by :meth:`load`,
        and their failures are ``/readyz``'s."""
        for key, remover in self.removers.items():
            if remover.spec.path is not None:
                try:
                    remover.prepared()
                except CleancutError as exc:
                    raise type(exc)(f"model {key} ({remover.spec.path}): {exc}") from exc

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, remover in self.removers.items():
            if name in self._networks:
                session = remover.session
                out[name] = {
                    "backend": session.backend,
                    "provider": session.provider,
                    "threads": session.threads,
                }
        return out

    # ------------------------------------------------------------------ stages

    def _decode(
        self, remover: Remover, data: bytes, options: RemoveOptions
    ) -> tuple[DecodedImage, list[np.ndarray], RemoveOptions]:
        decoded = remover.decode(data)
        # The same passes and resize policy as Remover.predict: the server's cut-out is the library's.
        xs = stages.prepare(decoded.pixels, options.mode, remover.recipe)
        if options.framing is not None:  # an uploaded background image: decoded before inference
            try:
                framing = options.framing.loaded(max_pixels=remover.settings.max_pixels)
            except ImageError as exc:  # same status as for the photo, saying which image it was
                raise type(exc)(f"the background image: {exc}") from exc
            options = replace(options, framing=framing)
        stages.check_canvas(decoded, options.framing, max_pixels=remover.settings.max_pixels)
        return decoded, xs, options

    def _infer(
        self,
        remover: Remover,
        network: _Network,
        pixels: np.ndarray,
        xs: list[np.ndarray],
        mode: str,
        slot: Slot,
    ) -> np.ndarray:
        """Every pass of the quality mode (the model's own session at 1024², the same weights
        at other sizes) under the request's deadline, through :func:`cleancut.stages.infer`."""

        def run(p: Pass, x: np.ndarray) -> np.ndarray:
            net = network if p.shape == remover.recipe.size else _Network(remover.session_for(p))
            y = net.run(x, slot)
            if slot.cancel.is_set():
                raise CancelledError("inference stopped: the request ran out of time")
            return y

        return stages.infer(pixels, mode, run, recipe=remover.recipe, inputs=xs)

    def _finish(
        self, remover: Remover, decoded: DecodedImage, output: np.ndarray, options: RemoveOptions
    ) -> Result:
        cutout = stages.finish(
            decoded, output, options, recipe=remover.recipe, max_pixels=remover.settings.max_pixels
        )
        body = stages.encode(cutout, options)
        # Cropping, a square canvas and the size cap change the size: report the output's own.
        media = mime_type(options.format, cutout.width, cutout.height)
        return Result(body, media, cutout.width, cutout.height, box=cutout.box)

    def network_for(self, model: str) -> tuple[Remover, _Network]:
        """The remover and loaded network of ``model`` (a 422 when it is not loaded here)."""
        network = self._networks.get(model)
        if network is None:
            raise InvalidOptionError(f"model {model!r} is not loaded on this server")
        return self.removers[model], network

    async def infer_frame(
        self, slot: Slot, model: str, pixels: np.ndarray, xs: list[np.ndarray], mode: str
    ) -> np.ndarray:
        """One frame of a clip through the network, as one job of the inference pool (so that
        photos take their turn between a clip's frames) under the clip's deadline."""
        remover, network = self.network_for(model)
        return await slot.inference(self._infer, remover, network, pixels, xs, mode, slot)

    async def remove(self, slot: Slot, data: bytes, options: RemoveOptions) -> Result:
        """Cut out one uploaded image inside an admitted slot."""
        network = self._networks.get(options.model)
        if network is None:
            raise InvalidOptionError(f"model {options.model!r} is not loaded on this server")
        remover = self.removers[options.model]
        decoded, xs, options = await slot.io("decode", self._decode, remover, data, options)
        output = await slot.inference(self._infer, remover, network, decoded.pixels, xs, options.mode, slot)
        del xs  # 12 MB per pass: gone before encoding starts
        result = await slot.io("encode", self._finish, remover, decoded, output, options)
        result.timings = dict(slot.timings)
        return result
