"""``ben2``: BEN2 (PramaLLC/BEN2; BEN2 Base is MIT).

The authors' inference code (``BEN2.py``: ``rgb_loader_refiner``, ``img_transform32``,
``postprocess_image``): the photo resized to 1024² with Pillow's LANCZOS, ``ToTensor``
(``÷ 255``) and ImageNet mean (.485, .456, .406) / std (.229, .224, .225); ``forward`` ends in a
sigmoid (so an export of it holds one: read from the graph, a sigmoid is added only where it
does not); the map is upsampled bilinearly to the photo and min-max rescaled over the whole map.
"""

from __future__ import annotations

from .base import Family
from .birefnet import IMAGENET

__all__ = ["FAMILY"]

FAMILY = Family(
    name="ben2",
    description="BEN2: Pillow LANCZOS resize, ÷255, ImageNet mean/std, sigmoid, min-max rescaled",
    default_size=(1024, 1024),
    norm=IMAGENET,
    down="pil-lanczos",
    up="bilinear",
    activation="sigmoid",
    rescale="minmax",
    final_output="first",
    quantize="floor",  # their `(r * 255).astype(np.uint8)` truncates
)
