"""What one server process holds: settings, the engine, the job queue, the clip jobs, the
browser assets.

Start-up work runs in background threads so that ``/healthz`` and the page answer at once
while the model loads (a first run may download 84 MiB): ``/readyz`` turns 200 only when the
server's models are loaded. Preparing the browser engine (hashing the model's chunks,
``npm pack`` of onnxruntime-web on first run) runs beside it and never blocks the API.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal

from ..errors import CleancutError
from ..models.store import model_file
from .browser_models import BROWSER_MAX_BYTES, ModelChunks, browser_model_for, resource_key
from .engine import Engine
from .jobqueue import JobQueue
from .ort_assets import OrtAssets, provision_ort
from .settings import ServerSettings
from .upload import UploadStage
from .video import VideoJobs

__all__ = ["AppState", "BrowserState"]

log = logging.getLogger(__name__)

BrowserState = Literal["pending", "ready", "unavailable"]


class AppState:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.queue = JobQueue(settings.workers, settings.queue_size)
        self.uploads = UploadStage(
            settings.max_uploads, settings.upload_timeout, settings.min_upload_rate, settings.upload_grace
        )
        self.engine = Engine(settings)
        self.videos = VideoJobs(settings)
        self.chunks: ModelChunks | None = None
        self.ort: OrtAssets | None = None
        self._chunks_error: str | None = None
        self._ort_error: str | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ start-up

    def start(self) -> None:
        """Load the models and prepare the browser engine; in the background by default."""
        jobs = [self._load_models]
        if self.settings.browser:
            jobs.append(self._prepare_ort)
        if not self.settings.load_in_background:
            for job in jobs:
                job()
            return
        for job in jobs:
            t = threading.Thread(target=job, name=f"cleancut-{job.__name__.strip('_')}", daemon=True)
            t.start()
            self._threads.append(t)

    def _load_models(self) -> None:
        self.engine.load()
        if not self.settings.browser:
            return
        # After the engine: it has fetched the files, so hashing reads a warm page cache.
        wanted = {k: self.settings.spec(k) for k in self.settings.models if not self.browser_detail(k)}
        if not wanted:
            return
        try:
            self.chunks = ModelChunks.prepare(wanted, self.settings.core)
        except CleancutError as exc:
            self._chunks_error = str(exc)
            log.warning("the in-browser engine has no model: %s", exc)

    def _prepare_ort(self) -> None:
        try:
            self.ort = provision_ort(self.settings.core, self.settings.ort_dir)
        except CleancutError as exc:
            self._ort_error = str(exc)
            log.warning("the in-browser engine is unavailable (server mode still works): %s", exc)

    def close(self) -> None:
        self.videos.close()
        self.queue.shutdown()

    # ------------------------------------------------------------------ browser status

    def browser_detail(self, key: str) -> str:
        """Why the page cannot run the loaded model ``key`` itself ("" where it can): a file
        over :data:`BROWSER_MAX_BYTES` runs on the server only."""
        spec = self.settings.spec(key)
        if spec.published:
            spec = browser_model_for(spec)
        path = model_file(spec, self.settings.core)
        size = path.stat().st_size if path.is_file() else spec.size
        if size is None:
            return ""  # known once fetched: the engine loads it first
        if size > BROWSER_MAX_BYTES:
            return (
                f"{key}'s file is {size / 1e6:.0f} MB, over the {BROWSER_MAX_BYTES / 1e6:.0f} MB "
                "a browser can hold: it runs on the server"
            )
        return ""

    @property
    def browser_model(self) -> str | None:
        """The resources.json key of the file the page runs for the default model (``None``:
        server-only)."""
        key = self.settings.default_model
        if self.browser_detail(key):
            return None
        spec = self.settings.spec(key)
        return resource_key(key, browser_model_for(spec) if spec.published else spec)

    def browser_status(self) -> tuple[BrowserState, str]:
        """Whether the page can run the model itself, and why not."""
        if not self.settings.browser:
            return "unavailable", "this server was started with --no-browser"
        if detail := self.browser_detail(self.settings.default_model):
            return "unavailable", detail
        errors = [e for e in (self._ort_error, self._chunks_error) if e]
        if errors:
            return "unavailable", "; ".join(errors)
        if self.engine.state == "failed" and self.chunks is None:
            return "unavailable", self.engine.error or "the model could not be loaded"
        if self.ort is None or self.chunks is None:
            return "pending", "the server is preparing the in-browser engine"
        return "ready", ""
