"""Models: what they are, where they come from, and the graph a backend loads.

- :mod:`~cleancut.models.registry`: the pinned models, as data (re-exported here);
- :mod:`~cleancut.models.families`: what each kind of network needs (one module per family);
- :mod:`~cleancut.models.installed`: where model files live, and whether they are intact;
- :mod:`~cleancut.models.download`: IMG.LY's chunked files fetched (URL, then npm), verified;
- :mod:`~cleancut.models.fetch`: single files (published, or a URL of your own), resumable;
- :mod:`~cleancut.models.graph`: derived (``isnet``), pruned, batched and resized graphs;
- :mod:`~cleancut.models.store`: the entries, :func:`~cleancut.models.store.fetch_model`
  and :func:`~cleancut.models.store.ensure_model` (the path a backend loads).

Only the registry is imported here: delivery and graph work load on first use.
"""

from __future__ import annotations

from .registry import (
    DATA_PACKAGE,
    DATA_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    MODELS,
    ModelSpec,
    model_names,
    resolve_model,
)

__all__ = [
    "DATA_PACKAGE",
    "DATA_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "MODELS",
    "ModelSpec",
    "model_names",
    "resolve_model",
]
