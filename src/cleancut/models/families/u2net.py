"""``u2net``: U²-Net (xuebinqin/U-2-Net, Apache-2.0) and its small variants.

The authors' ``u2net_test.py``: the photo resized to 320² (``RescaleT``), ``÷ max`` then
ImageNet mean and std (``ToTensorLab``; for 8-bit photos ``÷ 255``); the first output ``d1``
is already through a sigmoid and is min-max rescaled (``normPRED``); the mask is resized back
bilinearly.
"""

from __future__ import annotations

from .base import Family
from .birefnet import IMAGENET

__all__ = ["FAMILY"]

FAMILY = Family(
    name="u2net",
    description="U²-Net: 320², ÷255, ImageNet mean/std, min-max rescaled",
    default_size=(320, 320),
    norm=IMAGENET,
    down="bilinear",
    up="bilinear",
    activation="none",
    rescale="minmax",
    final_output="first",
)
