"""``ben2``: BEN2 (PramaLLC/BEN2; BEN2 Base is MIT).

The authors' inference code (``BEN2.py``, ``rgb_loader_refiner`` and ``img_transform``): the
photo resized to 1024² with Pillow's LANCZOS, ``ToTensor`` only (``÷ 255``, no mean or std);
the network's output is logits, through a sigmoid; the mask is upsampled to the photo.
"""

from __future__ import annotations

from .base import Family, Normalization

__all__ = ["FAMILY"]

FAMILY = Family(
    name="ben2",
    description="BEN2: Pillow LANCZOS resize, ÷255 only, logits through a sigmoid",
    default_size=(1024, 1024),
    norm=Normalization(scale=1 / 255),
    down="pil-lanczos",
    up="bilinear",
    activation="sigmoid",
    final_output="first",
)
