"""``GET /metrics``: Prometheus metrics of one server, in its own registry.

What is counted, and where:

* every answered request, by route template (``/api/jobs/{job_id}``, never the raw path, so
  the label set stays small), method and status, and its duration: :class:`MetricsMiddleware`,
  an outer ASGI middleware that sees the final status (a 500 the error middleware wrote
  included; ``499`` when the client hung up before any answer);
* every cut-out, by route, status and model: a photo by its HTTP status once its options are
  read (:func:`note_cutout`), a clip by how its job ended (:func:`note_clip`: ``200`` done,
  the error's status when it failed, ``499`` cancelled);
* the time of each stage of the job queue (waiting for an inference worker, decode,
  inference, encode), observed by the queue as each stage ends (:meth:`Metrics.observe_stage`),
  for photos and for each frame of a clip (label ``kind``);
* gauges read from the live state at scrape time (:class:`_StateCollector`): queue depth,
  inferences and uploads in flight, clip jobs, model load time and readiness.

A per-app :class:`~prometheus_client.CollectorRegistry`, not the process-global one: several
apps in one process (the tests, an embedding application) never collide, and nothing of the
process (GC, platform collectors) is mixed into the server's metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._version import __version__

if TYPE_CHECKING:
    from .state import AppState
    from .video import VideoJob

__all__ = ["Metrics", "MetricsMiddleware", "build_metrics_router", "note_clip", "note_cutout"]

#: Stage times: milliseconds on a GPU to a minute for a large photo in a slow line.
_STAGE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Whole requests: a slow upload may take --upload-timeout (60 s) plus --timeout (60 s).
_REQUEST_BUCKETS: Final = (*_STAGE_BUCKETS, 300.0)
#: The job queue's stage names that have a histogram; others (a clip's open, close) have none.
_STAGES: Final = ("queue", "decode", "inference", "encode")
#: The scope key of a request's :class:`_Note`.
_NOTE_KEY: Final = "cleancut.metrics"
#: Status of a request whose client left before any answer (nginx's code for it).
CLIENT_CLOSED: Final = "499"


@dataclass
class _Note:
    """What a route tells the middleware about its request (the scope holds it)."""

    metrics: Metrics
    model: str | None = None
    #: A clip job was admitted: its cut-out is counted when the job ends, not with the 202.
    deferred: bool = False


class Metrics:
    """The server's metrics and their registry (one per app)."""

    def __init__(self, state: AppState) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "cleancut_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "cleancut_request_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ["route"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "cleancut_requests_in_flight", "HTTP requests being received, processed or answered.", registry=r
        )
        self.cutouts = Counter(
            "cleancut_cutouts",
            "Cut-outs asked for, by route, outcome status and model (a clip counts once, when its "
            "job ends: 200 done, the error's status if it failed, 499 cancelled).",
            ["route", "status", "model"],
            registry=r,
        )
        help_by_stage = {
            "queue": "Time an inference job waited for a free inference worker (also when its "
            "request's deadline passed while it waited).",
            "decode": "Time to decode and preprocess an image (a photo, or one frame of a clip).",
            "inference": "Time of the network's passes for one image (a photo, or one frame of a clip).",
            "encode": "Time to postprocess, compose and encode one image (a photo, or one frame of a clip).",
        }
        names = {"queue": "cleancut_queue_wait_seconds"}
        self.stages = {
            stage: Histogram(
                names.get(stage, f"cleancut_{stage}_seconds"),
                help_by_stage[stage] + " kind: photo or frame.",
                ["kind"],
                buckets=_STAGE_BUCKETS,
                registry=r,
            )
            for stage in _STAGES
        }
        r.register(_StateCollector(state))

    def observe_stage(self, stage: str, seconds: float, clip: bool) -> None:
        """One finished stage of the job queue (called from its worker threads)."""
        histogram = self.stages.get(stage)
        if histogram is not None:
            histogram.labels(kind="frame" if clip else "photo").observe(seconds)

    def count_cutout(self, route: str, status: str, model: str) -> None:
        self.cutouts.labels(route=route, status=status, model=model).inc()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format the scraper asked for (Prometheus text, or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _StateCollector(Collector):
    """Gauges and totals read from the server's live state at each scrape."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def describe(self) -> Iterable[Metric]:
        return ()  # read live at collect(); nothing to check against other collectors

    def collect(self) -> Iterable[Metric]:
        state = self.state
        queue = state.queue.stats()
        yield _gauge("cleancut_queue_capacity", "Job slots: --workers plus --queue-size.", queue.capacity)
        yield _gauge(
            "cleancut_queue_admitted",
            "Requests holding a job slot (photo arrived: decoding, waiting, inferring or encoding).",
            queue.admitted,
        )
        yield _gauge(
            "cleancut_queue_depth",
            "Inference jobs waiting for a free inference worker.",
            state.queue.waiting,
        )
        yield _gauge("cleancut_inference_in_flight", "Inferences running on a worker now.", queue.running)
        yield _gauge("cleancut_inference_workers", "Inference workers (--workers).", queue.workers)
        yield _counter(
            "cleancut_queue_rejected",
            "Requests refused at once because every job slot was taken (503 overloaded).",
            queue.rejected,
        )
        yield _counter(
            "cleancut_queue_timeouts", "Requests whose deadline (--timeout) passed.", queue.timed_out
        )
        yield _counter(
            "cleancut_queue_abandoned",
            "Requests whose client hung up while they held a job slot (their work was dropped).",
            queue.abandoned,
        )
        uploads = state.uploads.stats()
        yield _gauge("cleancut_uploads_in_flight", "Photos or clips being received now.", uploads["active"])
        yield _counter(
            "cleancut_uploads_rejected",
            "Uploads refused at once because every upload place was taken (503 uploads_busy).",
            uploads["rejected"],
        )
        videos = state.videos.stats()
        yield _gauge("cleancut_video_jobs_running", "Clip jobs queued or running.", videos["running"])
        yield _gauge(
            "cleancut_video_jobs_kept",
            "Clip jobs kept: running or waiting for their download.",
            videos["kept"],
        )
        engine = state.engine
        ready = GaugeMetricFamily(
            "cleancut_model_state",
            "1 for the state the server's models are in: loading, ready or failed.",
            labels=["state"],
        )
        for name in ("loading", "ready", "failed"):
            ready.add_metric([name], 1.0 if engine.state == name else 0.0)
        yield ready
        load = GaugeMetricFamily(
            "cleancut_model_load_seconds",
            "Time the model took to load at start-up (fetch if needed, session creation).",
            labels=["model"],
        )
        for model, seconds in engine.load_seconds.items():
            load.add_metric([model], seconds)
        yield load
        info = GaugeMetricFamily(
            "cleancut_model_info",
            "1 for each loaded model, with what runs it.",
            labels=["model", "backend", "provider", "threads"],
        )
        for model, described in engine.describe().items():
            info.add_metric(
                [model, str(described["backend"]), str(described["provider"]), str(described["threads"])], 1.0
            )
        yield info
        build = GaugeMetricFamily("cleancut_build_info", "1, with cleancut's version.", labels=["version"])
        build.add_metric([__version__], 1.0)
        yield build


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


# --------------------------------------------------------------------------- requests


def _route_of(scope: Scope) -> str:
    """The matched route's template (``/api/jobs/{job_id}``, ``/static``), else ``unmatched``:
    a raw path as a label would let any client create series without bound."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template, method and final status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        note = _Note(self.metrics)
        scope[_NOTE_KEY] = note
        status: list[int] = []

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        metrics = self.metrics
        started = time.perf_counter()
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics.in_flight.dec()
            # No answer begun: an error escaped every handler (500), or the client left (499).
            code = str(status[0]) if status else CLIENT_CLOSED
            route = _route_of(scope)
            metrics.requests.labels(route=route, method=scope.get("method", ""), status=code).inc()
            metrics.request_seconds.labels(route=route).observe(time.perf_counter() - started)
            if note.model is not None and not note.deferred:
                metrics.count_cutout(route, code, note.model)


def note_cutout(request: Request, model: str) -> None:
    """This request asks for a cut-out with ``model``: the middleware counts it with the
    request's final status (nothing happens when metrics are off)."""
    note = request.scope.get(_NOTE_KEY)
    if isinstance(note, _Note):
        note.model = model


def note_clip(request: Request, job: VideoJob, model: str) -> None:
    """A clip job was admitted: its cut-out is counted when the job ends, with its outcome."""
    note = request.scope.get(_NOTE_KEY)
    if not isinstance(note, _Note) or job.task is None:
        return
    note.deferred = True
    route = _route_of(request.scope)
    metrics = note.metrics

    def ended(_task: object) -> None:
        if job.state == "done":
            status = "200"
        elif job.state == "failed" and job.error is not None:
            status = str(job.error.status)
        else:
            status = CLIENT_CLOSED  # cancelled: DELETE, or the server shutting down
        metrics.count_cutout(route, status, model)

    job.task.add_done_callback(ended)


def build_metrics_router(metrics: Metrics) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/metrics",
        summary="Prometheus metrics (text format, or OpenMetrics when asked for)",
        response_class=Response,
        responses={200: {"description": "The metrics", "content": {"text/plain": {}}}},
    )
    async def scrape(request: Request) -> Response:
        body, content_type = metrics.exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return router
