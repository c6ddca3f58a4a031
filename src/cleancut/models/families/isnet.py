"""``isnet``: IS-Net (DIS) as its authors' inference code runs it (``isnet-general-use.onnx``).

xuebinqin/DIS ``Inference.py``: the photo resized to 1024² with PyTorch's bilinear
``interpolate`` (half-pixel, no anti-aliasing), ``÷ 255``, mean 0.5, std 1; the network's
first output ``d1`` is already through a sigmoid; the map is upsampled bilinearly to the
photo and min-max rescaled (``(r − min) / (max − min)``).
"""

from __future__ import annotations

from .base import Family, Normalization

__all__ = ["FAMILY"]

FAMILY = Family(
    name="isnet",
    description="IS-Net as its authors run it: bilinear 1024², ÷255, mean 0.5, std 1, min-max rescaled",
    default_size=(1024, 1024),
    norm=Normalization(scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0)),
    down="bilinear",
    up="bilinear",
    activation="none",
    rescale="minmax",
    final_output="first",
    fast_scale=0.75,
    best_scale=0.75,
)
