"""The ``cleancut serve`` command (registered in :mod:`cleancut.cli`).

FastAPI and uvicorn are imported inside the command only: ``cleancut --help`` and every
other command stay fast and work without the ``server`` extra.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ..cli_options import engine_options
from ..errors import CleancutError
from ..models import DEFAULT_MODEL, model_names
from .settings import (
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_MAX_VIDEO_BYTES,
    DEFAULT_MAX_VIDEO_FRAMES,
    DEFAULT_MAX_VIDEO_PIXELS,
    DEFAULT_MAX_VIDEO_SECONDS,
    DEFAULT_SERVER_MAX_PIXELS,
)

__all__ = ["serve"]

log = logging.getLogger("cleancut")


def _split_models(values: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(n.strip() for v in values for n in v.split(",") if n.strip())
    return names or (DEFAULT_MODEL,)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port to listen on."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Inferences that run at the same time (threads sharing one loaded model). One "
    "inference already uses every core; more only helps on many-core machines.",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(min=1),
    help="Inference threads per worker (default: physical cores / workers); more than the CPUs "
    "this process may use are capped to them, with a warning.",
)
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    metavar="MODEL[,MODEL]",
    help=f"Model(s) to load, repeatable or comma-separated: a name ({', '.join(model_names())}), "
    "a path to an .onnx file of your own or an https:// URL of one; requests pick one by its "
    "name (a file's or URL's stem for your own: GET /api/models lists them). The first is the "
    f"default and the page's (default {DEFAULT_MODEL}).",
)
@click.option(
    "--model-family",
    default=None,
    metavar="NAME",
    help="The family of every model file or URL of your own given with -m (else each graph's "
    "cleancut.family metadata must name it).",
)
@click.option(
    "--model-sha256",
    default=None,
    metavar="HEX",
    help="The SHA-256 of the one model file or URL of your own given with -m (refused with "
    "several: a checksum pins one file).",
)
@click.option(
    "--max-upload-mb",
    default=DEFAULT_MAX_UPLOAD_BYTES / 2**20,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Largest request body (413 above).",
)
@click.option(
    "--max-pixels",
    default=DEFAULT_SERVER_MAX_PIXELS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest image, in pixels (413 above). Half the CLI's 100,000,000: the server may hold "
    "workers + queue-size images at once (CLEANCUT_MAX_PIXELS does not apply here).",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request may take once its photo has arrived and it is admitted (503 if "
    "still queued, 504 if processing).",
)
@click.option(
    "--max-uploads",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests that may be receiving their photo (upload or url fetch) at once, apart "
    "from the workers and the queue; beyond, 503 with Retry-After at once.",
)
@click.option(
    "--upload-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a photo may take to arrive, uploaded or fetched from its url (408 after).",
)
@click.option(
    "--min-upload-rate",
    default=16.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="KiB/s an upload must keep up on average after its first 5 s (408 below; 0: no minimum).",
)
@click.option(
    "--queue-size",
    default=4,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests that may wait for a worker; beyond, 503 with Retry-After at once.",
)
@click.option(
    "--max-video-mb",
    default=DEFAULT_MAX_VIDEO_BYTES / 2**20,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Largest clip for /api/remove-video (413 above).",
)
@click.option(
    "--max-video-seconds",
    default=DEFAULT_MAX_VIDEO_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Longest clip, in seconds (413 above, before any inference).",
)
@click.option(
    "--max-video-frames",
    default=DEFAULT_MAX_VIDEO_FRAMES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most frames in a clip (413 above, before any inference).",
)
@click.option(
    "--max-video-pixels",
    default=DEFAULT_MAX_VIDEO_PIXELS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest clip frame, in pixels (413 above).",
)
@click.option(
    "--video-timeout",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a clip's job may take once admitted (its status then says 504 timeout).",
)
@click.option(
    "--max-video-jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Clips cut out at once, each holding one job slot; beyond, 503 with Retry-After at once.",
)
@click.option(
    "--max-video-results",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Clip jobs kept at once, running or waiting for their download; beyond, 503 at once.",
)
@click.option(
    "--video-result-ttl",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a finished clip's result is kept for its (one) download.",
)
@click.option(
    "--video-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where clips and results are kept while their job lives (default: the system's temporary folder).",
)
@engine_options
@click.option(
    "--browser/--no-browser",
    default=True,
    show_default=True,
    help="Offer in-browser inference (serves the model chunks and onnxruntime-web).",
)
@click.option(
    "--ort-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Folder with onnxruntime-web's files (default: the copy the wheel carries, else the cache, "
    "else fetched once from the npm registry).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where models (and onnxruntime-web) are kept (env CLEANCUT_CACHE_DIR; default: the user "
    "cache folder).",
)
@click.option("--offline/--online", default=None, help="Never use the network (env CLEANCUT_OFFLINE).")
@click.option("--model-url", default=None, metavar="URL", help="Base URL of the model chunks.")
@click.option(
    "--allow-private-urls/--no-allow-private-urls",
    default=None,
    help="Let ?url= fetch loopback, private and link-local addresses (default: refused; "
    "env CLEANCUT_URL_ALLOW_PRIVATE=1). Only for a server no untrusted client can reach.",
)
@click.option(
    "--metrics/--no-metrics",
    default=True,
    show_default=True,
    help="Answer GET /metrics for Prometheus (request, cut-out and stage metrics; docs/server.md).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="HOST",
    help="A host name clients may use to reach this server (repeatable; *.example.com for its "
    "subdomains, * for any). IP addresses and localhost always work; other names are refused "
    "with 421 (a guard against DNS rebinding). Bound to 0.0.0.0 or :: without it, this machine's "
    "host name works too. Default: env CLEANCUT_ALLOWED_HOSTS (comma-separated).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"], case_sensitive=False),
    help="Log level of cleancut and uvicorn; info includes one logfmt line per request "
    "(cleancut.access), debug also the /healthz and /readyz probes.",
)
def serve(
    host: str,
    port: int,
    workers: int,
    threads: int | None,
    models: tuple[str, ...],
    model_family: str | None,
    model_sha256: str | None,
    max_upload_mb: float,
    max_pixels: int,
    timeout: float,
    max_uploads: int,
    upload_timeout: float,
    min_upload_rate: float,
    queue_size: int,
    max_video_mb: float,
    max_video_seconds: float,
    max_video_frames: int,
    max_video_pixels: int,
    video_timeout: float,
    max_video_jobs: int,
    max_video_results: int,
    video_result_ttl: float,
    video_dir: Path | None,
    device: str,
    backend: str,
    browser: bool,
    ort_dir: Path | None,
    cache_dir: Path | None,
    offline: bool | None,
    model_url: str | None,
    allow_private_urls: bool | None,
    metrics: bool,
    allowed_hosts: tuple[str, ...],
    log_level: str,
) -> None:
    """Run the HTTP API and the web page.

    \b
    cleancut serve                         http://127.0.0.1:8000/  (API docs at /docs)
    cleancut serve --host 0.0.0.0 --port 8080 --allowed-host photos.example.com
    cleancut serve -m isnet_fp16 -m ./mine.onnx --model-family birefnet
    curl -H 'Content-Type: image/jpeg' --data-binary @photo.jpg \\
         'http://127.0.0.1:8000/api/remove?format=webp' -o cutout.webp
    """
    try:
        import uvicorn

        from . import create_app
    except ImportError as exc:
        click.echo(
            f"error: the server needs its extra: pip install 'cleancut[server]' ({exc.name} is missing)",
            err=True,
        )
        sys.exit(1)
    from ..config import Settings
    from ..urls import UrlPolicy
    from .protocols import http_protocol
    from .settings import ServerSettings, allowed_hosts_from_env

    try:
        core = Settings.from_env(cache_dir=cache_dir, model_base_url=model_url, offline=offline)
        settings = ServerSettings(
            host=host,
            port=port,
            models=_split_models(models),
            model_family=model_family,
            model_sha256=model_sha256,
            workers=workers,
            threads=threads,
            device=device,
            backend=backend,
            queue_size=queue_size,
            max_upload_bytes=int(max_upload_mb * 2**20),
            max_pixels=max_pixels,
            timeout=timeout,
            max_uploads=max_uploads,
            upload_timeout=upload_timeout,
            min_upload_rate=min_upload_rate * 1024,
            max_video_bytes=int(max_video_mb * 2**20),
            max_video_seconds=max_video_seconds,
            max_video_frames=max_video_frames,
            max_video_pixels=max_video_pixels,
            video_timeout=video_timeout,
            max_video_jobs=max_video_jobs,
            max_video_results=max_video_results,
            video_result_ttl=video_result_ttl,
            video_dir=video_dir,
            core=core,
            ort_dir=ort_dir,
            browser=browser,
            url_policy=UrlPolicy.from_env(allow_private=allow_private_urls),
            allowed_hosts=allowed_hosts or allowed_hosts_from_env(),  # the command line wins
            metrics=metrics,
        )
        app = create_app(settings)
        # Models that are local files are checked before the port is bound (checksum, family,
        # the graph's shape); what needs the network loads after start (its failure: /readyz).
        app.state.cleancut.engine.check_local_models()
    except CleancutError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    logging.getLogger("cleancut").setLevel(log_level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s: %(message)s")
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    click.echo(f"cleancut serve: http://{shown}:{port}/  (API docs: /docs)", err=True)
    if host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        import socket

        name = socket.gethostname().lower() or "this machine's name"
        click.echo(
            f"note: listening on every interface; clients must name this server by an IP address, "
            f"localhost, {name} or {name.split('.', 1)[0]}.local: for any other name (a DNS name, "
            "a proxy's host), pass --allowed-host NAME, or they get 421",
            err=True,
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,  # cleancut.access logs each request once, with its timings (logfmt)
        # Keep-alive connections idle longer than this are closed: a flood of idle
        # clients cannot hold sockets for long.
        timeout_keep_alive=5,
        http=http_protocol(),  # requests uvicorn refuses itself get our JSON 400 too
    )
