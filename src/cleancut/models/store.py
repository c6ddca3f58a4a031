"""The models layer's entries: the model file for a name, and the graph a backend loads.

Layers inside :mod:`cleancut.models`, each importing only the ones before it:
:mod:`~cleancut.models.registry` (the pinned models, as data) →
:mod:`~cleancut.models.installed` (where files live, whether they are intact) →
:mod:`~cleancut.models.download` (published files: fetched, verified, installed) →
:mod:`~cleancut.models.graph` (derived and prepared graphs built from them) → this module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Settings
from ..progress import ProgressCallback
from .download import fetch_published
from .graph import ensure_derived, prepared_graph
from .registry import ModelSpec, resolve_model

__all__ = ["ensure_model", "fetch_model"]


def fetch_model(
    spec: ModelSpec | str,
    settings: Settings,
    *,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    force: bool = False,
) -> Path:
    """Make sure a model is installed and verified; return its path.

    A published model is fetched (see :func:`~cleancut.models.download.fetch_published` for
    the sources tried and the errors raised); a derived one (``isnet``) is built once from
    its published base.
    """
    spec = resolve_model(spec)
    if spec.derived_from is not None:
        return ensure_derived(spec, settings, progress=progress, cancel=cancel, force=force)
    return fetch_published(spec, settings, progress=progress, cancel=cancel, force=force)


def ensure_model(
    spec: ModelSpec | str,
    settings: Settings,
    progress: ProgressCallback | None = None,
    cancel: Any = None,
    *,
    backend: str = "onnxruntime",
    gpu: bool = False,
) -> Path:
    """The ONNX file ``backend`` loads for ``spec`` (fetched, derived and prepared as needed).

    On a GPU: the published graph (fp16 runs natively on tensor cores) with a symbolic batch
    dimension, for batched inference. On a CPU, for ``isnet_fp16``: its fp32 widening (the
    same weight values) — onnxruntime's CPU kernels compute fp16 graphs in fp32 anyway,
    inserting casts (measured 1.06-1.24x slower), and OpenVINO's fp16-weights path adds
    decompression work (0.5-0.76x the speed).
    """
    spec = resolve_model(spec)
    if gpu and backend == "onnxruntime":
        path = fetch_model(spec, settings, progress=progress, cancel=cancel)
        return prepared_graph(spec, path, settings, dynamic_batch=True)
    if spec.name == "isnet_fp16":
        return fetch_model(resolve_model("isnet"), settings, progress=progress, cancel=cancel)
    path = fetch_model(spec, settings, progress=progress, cancel=cancel)
    return prepared_graph(spec, path, settings)
