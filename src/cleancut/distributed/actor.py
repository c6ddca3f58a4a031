"""The Ray Data worker: :class:`CutoutActor` holds one loaded model and cuts out rows.

``map_batches`` runs it on an actor pool; each actor loads one
:class:`~cleancut.remover.Remover` once (on a GPU where the cluster has GPUs) and reuses it
for every row. A row is read (a path, an fsspec URI, or an http(s) URL through the guarded
fetcher), decoded, inferred and finished with the local batch's own stages
(:mod:`cleancut.batch`), so every :class:`~cleancut.options.CutOptions` field applies, then
written. A row never raises: a bad file comes back as a ``failed`` row with the error text.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from .. import stages
from ..batch import Prepared, describe, finish, prepare
from ..config import Settings
from ..errors import InputNotFoundError, InvalidOptionError, OutputExistsError
from ..options import CutOptions, EngineOptions
from ..planning import Job
from ..remover import Remover
from .jobs import Status
from .uris import HTTP, guarded_fetcher, is_local, is_object_store, put, scheme, url_to_fs

__all__ = ["CutoutActor", "WorkerSettings", "worker_settings"]

#: What an actor's :class:`~cleancut.config.Settings` are made from: a ``Settings`` is used
#: as it is; a mapping holds ``Settings`` field overrides applied to the worker's own
#: environment (its cache folder, its ``CLEANCUT_*`` variables); ``None``: that environment.
WorkerSettings: TypeAlias = Settings | Mapping[str, Any] | None


def worker_settings(value: WorkerSettings) -> Settings:
    """The :class:`~cleancut.config.Settings` of ``value``, built where it is called (on a
    worker: from the worker's environment)."""
    if isinstance(value, Settings):
        return value
    return Settings.from_env(**dict(value or {}))


class CutoutActor:
    """A Ray Data ``map_batches`` callable class: one loaded model per actor, reused.

    Each batch is a dict of columns ``input`` / ``output``; the result has one row per
    input with ``status``, ``error``, ``seconds``, ``timings`` (JSON) and ``worker``.
    Within a batch, reading and decoding of the next images and encoding and writing of
    the previous ones run on two threads while the model infers the current one, as in
    the local batch.
    """

    def __init__(
        self,
        *,
        engine: EngineOptions | None = None,
        settings: WorkerSettings = None,
        options: CutOptions | None = None,
        overwrite: bool = False,
        prefetch: int = 2,
    ) -> None:
        # Settings built here, on the worker, read the worker's own environment (its cache
        # folder, its CLEANCUT_* variables) unless the driver passed explicit ones.
        resolved = worker_settings(settings)
        self.remover = Remover.from_options(engine or EngineOptions(), settings=resolved).load()
        # a background image is decoded once per actor, not once per row
        opts = options if options is not None else CutOptions()
        self.options = opts.loaded(resolved.max_pixels)
        self.overwrite = overwrite
        self.prefetch = max(1, prefetch)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.fetch_http = guarded_fetcher()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="cleancut-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cleancut-write")

    # -- one row, in stages

    def _read(self, uri: str) -> Any:
        """What :meth:`Remover.decode` takes: a local path, or bytes named after the URI (so
        decode errors name the file)."""
        if is_local(uri):
            return Path(uri)
        if scheme(uri) in HTTP:
            if self.fetch_http is None:  # planning refuses these; a hand-built row may not
                raise InvalidOptionError(f"{uri}: http(s) inputs are not supported here")
            data = self.fetch_http(uri)
        else:
            fs, path = url_to_fs(uri)
            if not is_object_store(fs):
                # Object stores hold nothing but objects; elsewhere (file://, sftp, smb) a
                # FIFO would block the read for ever, and a device, a folder or a dangling
                # or looping symlink cannot be read either: the local batch's "not a file".
                self._check_regular(fs, path, uri)
            try:
                data = fs.cat_file(path)
            except FileNotFoundError:
                raise InputNotFoundError(f"no such file: {uri}") from None
        stream = io.BytesIO(data)
        stream.name = uri
        return stream

    @staticmethod
    def _check_regular(fs: Any, path: str, uri: str) -> None:
        try:
            kind = fs.info(path).get("type")
        except FileNotFoundError:
            raise InputNotFoundError(f"no such file: {uri}") from None
        except OSError as exc:  # a symlink loop, no permission
            raise InputNotFoundError(f"cannot use {uri} as an input path: {exc.strerror or exc}") from None
        if kind != "file":
            what = f"a {kind} entry" if kind else "a special entry"
            raise InputNotFoundError(f"not a file: {uri} ({what}, not a regular file)")

    def _output_exists(self, uri: str) -> bool:
        if is_local(uri):
            return Path(uri).exists()
        fs, path = url_to_fs(uri)
        return bool(fs.exists(path))

    def _prepare(self, uri: str, output: str) -> Prepared | str:
        """Read, decode, preprocess; or a reason to skip the row without model work."""
        if not self.overwrite and self._output_exists(output):
            return f"{output} exists (use --overwrite to replace it)"
        t0 = time.perf_counter()
        source = self._read(uri)
        t1 = time.perf_counter()
        decoded = self.remover.decode(source)
        stages.check_canvas(decoded, self.options.framing, max_pixels=self.remover.settings.max_pixels)
        t2 = time.perf_counter()
        # several passes (quality modes other than default) are preprocessed as they run
        x = prepare(decoded, self.remover, self.options.mode)
        t3 = time.perf_counter()
        return Prepared(decoded, x, {"read": t1 - t0, "decode": t2 - t1, "preprocess": t3 - t2})

    def _finish(self, output: str, name: str, prepared: Prepared, y: np.ndarray) -> dict[str, float]:
        """The local batch's finishing step (postprocess, compose, every output option,
        encode); local outputs are written by it too (temp + rename), others here."""
        if is_local(output):
            job = Job(None, Path(output), name)
            timings, _ = finish(
                job,
                prepared.decoded,
                y,
                self.options,
                self.overwrite,
                self.remover.recipe,
                self.remover.settings.max_pixels,
            )
            return timings
        timings, data = finish(
            Job(None, None, name),
            prepared.decoded,
            y,
            self.options,
            self.overwrite,
            self.remover.recipe,
            self.remover.settings.max_pixels,
        )
        assert data is not None
        t0 = time.perf_counter()
        put(output, data, overwrite=self.overwrite)
        timings["write"] = time.perf_counter() - t0
        return timings

    # -- a batch

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        inputs = [str(v) for v in batch["input"]]
        outputs = [str(v) for v in batch["output"]]
        names = [str(v) for v in batch["name"]] if "name" in batch else inputs
        n = len(inputs)
        status: list[Status] = ["failed"] * n
        errors: list[str | None] = [None] * n
        seconds = [0.0] * n
        timings: list[dict[str, float]] = [{} for _ in range(n)]
        started = [0.0] * n

        reads: deque[tuple[int, Future[Prepared | str]]] = deque()
        writes: deque[tuple[int, Future[dict[str, float]]]] = deque()
        upcoming = iter(range(n))

        def submit_read() -> None:
            i = next(upcoming, None)
            if i is not None:
                started[i] = time.perf_counter()
                reads.append((i, self._reader.submit(self._prepare, inputs[i], outputs[i])))

        def settle(i: int, exc: BaseException | None, skip: str | None = None) -> None:
            seconds[i] = time.perf_counter() - started[i]
            if skip is not None:
                status[i], errors[i] = "skipped", skip
            elif exc is None:
                status[i] = "written"
            elif isinstance(exc, OutputExistsError) and not self.overwrite:
                status[i], errors[i] = "skipped", str(exc)
            else:
                status[i], errors[i] = "failed", describe(exc)

        def drain(limit: int) -> None:
            while len(writes) > limit:
                i, fut = writes.popleft()
                try:
                    timings[i].update(fut.result())
                except Exception as exc:
                    settle(i, exc)
                else:
                    settle(i, None)

        for _ in range(self.prefetch):
            submit_read()
        while reads:
            i, fut = reads.popleft()
            submit_read()  # decode the next image while this one is inferred
            try:
                prepared = fut.result()
            except Exception as exc:
                settle(i, exc)
                continue
            if isinstance(prepared, str):
                settle(i, None, skip=prepared)
                continue
            timings[i].update(prepared.timings)
            t0 = time.perf_counter()
            try:
                y = prepared.infer(self.remover, self.options.mode, None)
            except Exception as exc:
                settle(i, exc)
                continue
            timings[i]["inference"] = time.perf_counter() - t0
            writes.append((i, self._writer.submit(self._finish, outputs[i], names[i], prepared, y)))
            del prepared
            drain(self.prefetch)
        drain(0)
        return {
            "input": inputs,
            "output": outputs,
            "status": list(status),
            "error": ["" if e is None else e for e in errors],
            "seconds": seconds,
            "timings": [json.dumps(t) for t in timings],
            "worker": [self.worker] * n,
        }
