"""The models layer's entries: the model file for a spec, and the graph a backend loads.

Layers inside :mod:`cleancut.models`, each importing only the ones before it:
:mod:`~cleancut.models.registry` (the pinned models, as data) and
:mod:`~cleancut.models.families` (what each kind of network needs) →
:mod:`~cleancut.models.installed` (where files live, whether they are intact) →
:mod:`~cleancut.models.download` (IMG.LY's chunked files) and
:mod:`~cleancut.models.fetch` (single files: published, or a URL of your own) →
:mod:`~cleancut.models.graph` (derived and prepared graphs built from them) → this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import InvalidOptionError, ModelError
from ..progress import ProgressCallback
from .download import fetch_published
from .graph import ensure_derived
from .installed import installed_path
from .prepare import Prepared, content_sha256, prepare
from .registry import ModelSpec, resolve_model

__all__ = ["check_license", "ensure_model", "fetch_model", "model_file", "model_sha256", "verify_model"]


def model_file(spec: ModelSpec | str, settings: Settings) -> Path:
    """Where ``spec``'s file lives (or will live) in the cache; a file of your own is where it is."""
    spec = resolve_model(spec)
    if spec.path is not None:
        return spec.path
    if spec.url is not None and (spec.custom or spec.sha256 is None):
        from .fetch import url_model_path

        return url_model_path(spec.url, settings)
    return installed_path(spec, settings)


def verify_model(spec: ModelSpec, settings: Settings, *, thorough: bool = True) -> bool | None:
    """Whether ``spec``'s installed file is intact (``None``: not installed). Pinned files are
    checked against their SHA-256, derived ones and those recorded on first use against
    their record, a file of your own against ``--model-sha256`` (else it is taken as it is)."""
    from .installed import verify_installed

    path = model_file(spec, settings)
    if not path.is_file():
        return None
    if spec.path is not None:
        return spec.sha256 is None or content_sha256(path, settings) == spec.sha256
    if spec.url is not None and (spec.custom or spec.sha256 is None):
        return verify_installed(replace(spec, sha256=None), path, thorough=thorough)
    return verify_installed(spec, path, thorough=thorough)


def check_license(spec: ModelSpec, settings: Settings) -> None:
    """A non-commercial model is fetched only after its licence was acknowledged
    (``CLEANCUT_ACCEPT_NONCOMMERCIAL=1``, ``--accept-noncommercial``)."""
    if spec.noncommercial and not settings.accept_noncommercial:
        raise InvalidOptionError(
            f"{spec.name} is licensed {spec.license}; to fetch it, acknowledge that you will not use it "
            "commercially: --accept-noncommercial (CLI) or CLEANCUT_ACCEPT_NONCOMMERCIAL=1"
        )


def fetch_model(
    spec: ModelSpec | str,
    settings: Settings,
    *,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    force: bool = False,
) -> Path:
    """Make sure a model file is there and verified; return its path.

    IMG.LY's models come as SHA-256-named chunks (see
    :func:`~cleancut.models.download.fetch_published`: their CDN, then npm); a derived one
    (``isnet``) is built once from its published base; every other published model, and a
    URL of your own, is one file (:mod:`cleancut.models.fetch`); a path of your own is
    checked against ``--model-sha256`` when one was given.
    """
    spec = resolve_model(spec)
    if spec.path is not None:
        if spec.sha256 is not None and content_sha256(spec.path, settings) != spec.sha256:
            from ..errors import ChecksumMismatchError

            raise ChecksumMismatchError(
                f"{spec.path} has SHA-256 {content_sha256(spec.path, settings)}, not the {spec.sha256} given"
            )
        return spec.path
    if spec.derived_from is not None:
        return ensure_derived(spec, settings, progress=progress, cancel=cancel, force=force)
    if spec.resource is not None:
        return fetch_published(spec, settings, progress=progress, cancel=cancel, force=force)
    if spec.url is None:
        raise ModelError(f"model {spec.name!r} has no source")
    from . import fetch

    if spec.custom:
        return fetch.fetch_url_model(
            spec.url, sha256=spec.sha256, settings=settings, progress=progress, cancel=cancel
        )
    check_license(spec, settings)
    target = installed_path(spec, settings)
    if spec.sha256 is None:  # the publisher gives none: recorded on first use, like a URL of yours
        return fetch.fetch_url_model(
            spec.url, sha256=None, settings=settings, progress=progress, cancel=cancel
        )
    if force:
        target.unlink(missing_ok=True)
    return fetch.fetch_file(
        spec.url,
        target,
        sha256=spec.sha256,
        size=spec.size,
        md5=spec.md5,
        settings=settings,
        progress_key=spec.progress_key,
        progress=progress,
        cancel=cancel,
    )


def model_sha256(spec: ModelSpec, path: Path, settings: Settings) -> str:
    """The SHA-256 of ``spec``'s verified file at ``path`` (pinned, or hashed once)."""
    if spec.sha256 is not None and spec.path is None:
        return spec.sha256
    return content_sha256(path, settings)


def ensure_model(
    spec: ModelSpec | str,
    settings: Settings,
    progress: ProgressCallback | None = None,
    cancel: Any = None,
    *,
    backend: str = "onnxruntime",
    gpu: bool = False,
) -> Prepared:
    """The graph ``backend`` loads for ``spec`` (fetched and prepared as needed) with the
    recipe its family gives it (:class:`~cleancut.models.graph.Prepared`).

    On a GPU: the model's own weights (fp16 runs natively on tensor cores) with a symbolic
    batch dimension, for batched inference. On a CPU: fp16 weights widened to fp32 (the same
    values) — onnxruntime's CPU kernels compute fp16 graphs in fp32 anyway, inserting casts
    (measured 1.06-1.24x slower), and OpenVINO's fp16-weights path adds decompression work
    (0.5-0.76x the speed).
    """
    del backend  # both backends load the same prepared graph
    spec = resolve_model(spec)
    path = fetch_model(spec, settings, progress=progress, cancel=cancel)
    return prepare(spec, path, model_sha256(spec, path, settings), settings, gpu=gpu)
