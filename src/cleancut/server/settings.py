"""``ServerSettings``: everything ``cleancut serve`` can be told, validated once.

Defaults are chosen for a small CPU box (the reference machine has 2 cores): one inference
at a time using every core, a short waiting line, and limits that keep the worst case in
memory far below the machine's RAM (rembg's server grew to 137 GB under load: rembg #752).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import InvalidOptionError
from ..models import DEFAULT_MODEL, ModelSpec, model_names, resolve_model
from ..urls import UrlPolicy

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "DEFAULT_MAX_VIDEO_BYTES",
    "DEFAULT_MAX_VIDEO_FRAMES",
    "DEFAULT_MAX_VIDEO_PIXELS",
    "DEFAULT_MAX_VIDEO_SECONDS",
    "DEFAULT_SERVER_MAX_PIXELS",
    "ServerSettings",
    "resolve_server_models",
]

#: 50 MiB: a 100 MP JPEG is ~30-60 MB, a phone photo 2-8 MB.
DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: 50 MP: above every phone and most cameras. Each admitted request may hold its decoded
#: RGBA (4 B/px) plus mask and output, ~10 B/px, so the queue's worst case stays near
#: (workers + queue_size) x 0.5 GB.
DEFAULT_SERVER_MAX_PIXELS = 50_000_000
#: 100 MiB: a minute of 1080p H.264 from a phone is 50-130 MB; short clips are far less.
DEFAULT_MAX_VIDEO_BYTES = 100 * 1024 * 1024
#: A short clip: one network pass per frame, about a second each on a small CPU.
DEFAULT_MAX_VIDEO_SECONDS = 60.0
DEFAULT_MAX_VIDEO_FRAMES = 1800
#: 4K UHD frames at most (a few are held at once: decoded, in flight and being encoded).
DEFAULT_MAX_VIDEO_PIXELS = 3840 * 2160


def _default_core() -> Settings:
    return Settings.from_env()


#: A host name as ``--allowed-host`` takes it: a name or address, ``*.suffix``, or ``*``.
_HOST_NAME = re.compile(r"\*|(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?|\[?[0-9a-f:.]+\]?")


def allowed_hosts_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """``CLEANCUT_ALLOWED_HOSTS``, comma-separated (empty: none)."""
    env = os.environ if environ is None else environ
    return tuple(h.strip() for h in env.get("CLEANCUT_ALLOWED_HOSTS", "").split(",") if h.strip())


def normalise_allowed_host(value: str) -> str:
    """An allowed host in the form the Host check compares (lower case, no final dot), or an
    :class:`InvalidOptionError` naming what is wrong with it."""
    host = value.strip().lower()
    if "://" in host or "/" in host:
        raise InvalidOptionError(
            f"allowed host {value!r} must be a host name, not a URL (e.g. photos.example.com)"
        )
    if not _HOST_NAME.fullmatch(host):
        raise InvalidOptionError(
            f"allowed host {value!r} is not a host name: give a name (photos.example.com), "
            "a domain's subdomains (*.example.com), or * for any host"
        )
    return host.rstrip(".")


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _friendly_key(spec: ModelSpec, taken: set[str]) -> str:
    """A custom model's key: its file's stem (a URL's last path part), made unique against
    the registry's names and aliases and the keys before it with ``-2``, ``-3``…"""
    import urllib.parse

    if spec.path is not None:
        stem = spec.path.stem
    else:
        stem = Path(urllib.parse.unquote(urllib.parse.urlsplit(spec.url or "").path)).stem
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "model"
    key, n = base, 1
    while _norm(key) in taken:
        n += 1
        key = f"{base}-{n}"
    return key


def resolve_server_models(
    values: tuple[str, ...], *, family: str | None = None, sha256: str | None = None
) -> dict[str, ModelSpec]:
    """The models a server loads, by the key requests name them with: a published model by
    its canonical name, a file or URL of your own by its file's stem (unique).

    ``family`` and ``sha256`` (``--model-family``, ``--model-sha256``) apply to every custom
    model given; a checksum pins one file, so with several custom models it is refused, and
    either one without any custom model is refused too (published models know theirs)."""
    if not values:
        raise InvalidOptionError("at least one model is needed")
    specs = [resolve_model(v) for v in values]  # names, paths and URLs; a missing file fails here
    custom = [s for s in specs if s.custom]
    if (family is not None or sha256 is not None) and not custom:
        flag = "--model-family" if family is not None else "--model-sha256"
        raise InvalidOptionError(
            f"{flag} applies to a model file or URL of your own, and -m names none "
            f"({', '.join(values)})"
        )
    if sha256 is not None and len(custom) > 1:
        raise InvalidOptionError(
            f"--model-sha256 pins one file, but {len(custom)} files/URLs of your own were given "
            f"({', '.join(str(s.path or s.url) for s in custom)}): give one of them with it, or "
            "none (a local file is then taken as it is)"
        )
    taken = {_norm(n) for n in model_names()}
    out: dict[str, ModelSpec] = {}
    seen: dict[str, str] = {}  # spec name -> key: the same model given twice is loaded once
    for value, spec in zip(values, specs, strict=True):
        if spec.custom:
            spec = resolve_model(value, family=family, sha256=sha256)
        if spec.name in seen:
            continue
        key = _friendly_key(spec, taken) if spec.custom else spec.name
        taken.add(_norm(key))
        seen[spec.name] = key
        out[key] = spec
    return out


@dataclass(frozen=True)
class ServerSettings:
    """Configuration of one server process.

    ``models``: the models loaded at start-up: registry names, paths to ONNX files of your
    own, ``https://`` URLs; after validation, the keys requests name them with (a published
    model's canonical name, a custom model's file stem; see :func:`resolve_server_models`).
    The first is the default for requests and the page. ``model_family``/``model_sha256``
    apply to every custom model (``--model-family``, ``--model-sha256``). ``specs``: each
    key's :class:`~cleancut.models.ModelSpec` (filled in by validation).
    ``workers``: inferences that run at the same time.
    ``threads``: inference threads per worker (default: physical cores / workers).
    ``device``/``backend``: as for :class:`~cleancut.Remover` (``auto`` picks the fastest
    backend verified on this machine).
    ``queue_size``: requests that may wait for a worker; more are answered 503 at once.
    ``timeout``: seconds a request may take from admission (once its photo has arrived) to
    the answer (504/503 after).
    ``max_uploads``: requests that may be receiving their photo (an upload, or a ``url``
    fetch) at once, apart from the job slots; more are answered 503 ``uploads_busy`` at once.
    ``upload_timeout``: seconds a request's body (or its ``url`` fetch) may take to arrive
    (408 after). ``min_upload_rate``: bytes per second a body must keep up on average once
    the first ``upload_grace`` seconds have passed (408 after; 0: no minimum).
    ``max_video_bytes``, ``max_video_seconds``, ``max_video_frames``, ``max_video_pixels``:
    the largest clip ``POST /api/remove-video`` takes (body, duration, frame count, pixels
    per frame); over any of them it is refused (413) before any inference.
    ``video_timeout``: seconds a clip's job may take from admission to its last frame.
    ``max_video_jobs``: clips admitted (holding a job slot) at once; more are answered 503
    ``videos_busy`` at once. ``max_video_results``: clip jobs kept at once, running or
    finished and waiting for their download (503 beyond); ``video_result_ttl``: seconds a
    finished result is kept for its download. ``video_dir``: where clips and results are
    kept while a job lives (default: the system's temporary folder).
    ``core``: cleancut's own settings (cache folder, offline mode, npm, model URL).
    ``ort_dir``: a folder holding onnxruntime-web's files (used instead of the bundled or cached copy).
    ``browser``: serve the in-browser engine (model chunks and onnxruntime-web files).
    ``load_in_background``: start answering (``/healthz``, the page) while models load;
    ``False`` waits in the start-up hook, so the server is ready when it accepts requests.
    ``allowed_hosts``: ``Host`` names answered besides IP addresses, ``localhost`` and the
    bound name (``*.example.com``: its subdomains; ``*``: any; env ``CLEANCUT_ALLOWED_HOSTS``,
    comma-separated); others get 421, a guard against DNS rebinding. Bound to ``0.0.0.0`` or
    ``::`` with none given, this machine's host name is accepted too.
    ``url_policy``: what ``POST /api/remove?url=…`` may fetch; private and loopback
    addresses are refused unless it allows them (``--allow-private-urls``,
    ``CLEANCUT_URL_ALLOW_PRIVATE=1``).
    ``metrics``: answer ``GET /metrics`` (Prometheus; ``--no-metrics`` turns it off).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    model_family: str | None = None
    model_sha256: str | None = None
    specs: Mapping[str, ModelSpec] | None = field(default=None, compare=False)
    workers: int = 1
    threads: int | None = None
    device: str = "auto"
    backend: str = "auto"
    queue_size: int = 4
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_SERVER_MAX_PIXELS
    timeout: float = 60.0
    max_uploads: int = 8
    upload_timeout: float = 60.0
    min_upload_rate: float = 16 * 1024
    upload_grace: float = 5.0
    max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS
    max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES
    max_video_pixels: int = DEFAULT_MAX_VIDEO_PIXELS
    video_timeout: float = 900.0
    max_video_jobs: int = 1
    max_video_results: int = 8
    video_result_ttl: float = 600.0
    video_dir: Path | None = None
    core: Settings = field(default_factory=_default_core)
    ort_dir: Path | None = None
    browser: bool = True
    load_in_background: bool = True
    url_policy: UrlPolicy = field(default_factory=UrlPolicy.from_env)
    metrics: bool = True
    allowed_hosts: tuple[str, ...] = field(default_factory=allowed_hosts_from_env)

    def __post_init__(self) -> None:
        hosts = tuple(dict.fromkeys(normalise_allowed_host(h) for h in self.allowed_hosts))
        object.__setattr__(self, "allowed_hosts", hosts)
        # Keys, de-duplicated, order kept: aliases, typos and missing files fail here, at
        # start-up. A copy (with_) carries its resolved specs along.
        if self.specs is None or tuple(self.specs) != self.models:
            specs = resolve_server_models(
                self.models, family=self.model_family, sha256=self.model_sha256
            )
            object.__setattr__(self, "specs", specs)
            object.__setattr__(self, "models", tuple(specs))
        checks = (
            (self.workers >= 1, f"workers must be at least 1, got {self.workers}"),
            (self.threads is None or self.threads >= 1, f"threads must be at least 1, got {self.threads}"),
            (self.queue_size >= 0, f"queue_size must be 0 or more, got {self.queue_size}"),
            (self.max_upload_bytes >= 1, f"max_upload_bytes must be positive, got {self.max_upload_bytes}"),
            (self.max_pixels >= 1, f"max_pixels must be positive, got {self.max_pixels}"),
            (self.timeout > 0, f"timeout must be positive, got {self.timeout}"),
            (self.max_uploads >= 1, f"max_uploads must be at least 1, got {self.max_uploads}"),
            (self.upload_timeout > 0, f"upload_timeout must be positive, got {self.upload_timeout}"),
            (self.min_upload_rate >= 0, f"min_upload_rate must be 0 or more, got {self.min_upload_rate}"),
            (self.upload_grace >= 0, f"upload_grace must be 0 or more, got {self.upload_grace}"),
            (0 <= self.port <= 65535, f"port must be 0..65535, got {self.port}"),
            (self.max_video_bytes >= 1, f"max_video_bytes must be positive, got {self.max_video_bytes}"),
            (
                math.isfinite(self.max_video_seconds) and self.max_video_seconds > 0,
                f"max_video_seconds must be positive, got {self.max_video_seconds}",
            ),
            (self.max_video_frames >= 1, f"max_video_frames must be positive, got {self.max_video_frames}"),
            (self.max_video_pixels >= 1, f"max_video_pixels must be positive, got {self.max_video_pixels}"),
            (self.video_timeout > 0, f"video_timeout must be positive, got {self.video_timeout}"),
            (self.max_video_jobs >= 1, f"max_video_jobs must be at least 1, got {self.max_video_jobs}"),
            (
                self.max_video_results >= self.max_video_jobs,
                f"max_video_results must be at least max_video_jobs ({self.max_video_jobs}), "
                f"got {self.max_video_results}",
            ),
            (self.video_result_ttl > 0, f"video_result_ttl must be positive, got {self.video_result_ttl}"),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidOptionError(message)

    @property
    def default_model(self) -> str:
        return self.models[0]

    def spec(self, key: str) -> ModelSpec:
        """The spec of the loaded model ``key``."""
        assert self.specs is not None
        return self.specs[key]

    @property
    def fetch_policy(self) -> UrlPolicy:
        """The URL policy within this server's own limits: a fetched image may be no larger
        than an upload, and take no longer to arrive than one."""
        policy = self.url_policy
        return policy.with_(
            max_bytes=min(policy.max_bytes, self.max_upload_bytes),
            timeout=min(policy.timeout, self.upload_timeout),
        )

    @property
    def capacity(self) -> int:
        """Requests admitted at once: running plus waiting."""
        return self.workers + self.queue_size

    def with_(self, **changes: Any) -> ServerSettings:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
