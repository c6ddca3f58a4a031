"""Inference: running a model graph, on the backend and device it should run on.

- :mod:`~cleancut.inference.runtime`: the session protocol, the option vocabularies
  (backends, devices, scheduling) and onnxruntime sessions (CPU and GPU providers);
- :mod:`~cleancut.inference.openvino`: OpenVINO sessions behind the same protocol;
- :mod:`~cleancut.inference.backends`: choosing a backend for ``auto`` (self-check against
  the onnxruntime reference, recorded per machine).

The graph a session loads comes from the models layer
(:func:`cleancut.models.store.ensure_model`); nothing here fetches models itself.
"""

from __future__ import annotations
