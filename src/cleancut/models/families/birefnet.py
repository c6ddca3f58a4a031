"""``birefnet``: BiRefNet (ZhengPeng7/BiRefNet, MIT) and networks exported like it (BRIA RMBG-2.0).

The authors' inference (README / ``inference.py``): ``transforms.Resize((1024, 1024))`` on the
PIL image (Pillow's anti-aliased bilinear), ``ToTensor`` (``÷ 255``), ImageNet mean
(.485, .456, .406) and std (.229, .224, .225); the last of the model's maps is the final one
and holds logits, through a sigmoid; ``ToPILImage`` truncates ``pred · 255`` and the mask is
resized back with Pillow's default (bicubic). The exported graphs are fixed at their input
size (Swin's windows), so fast and default are one pass and best adds the mirrored pass.
"""

from __future__ import annotations

from .base import Family, Normalization

__all__ = ["FAMILY", "IMAGENET"]

IMAGENET = Normalization(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

FAMILY = Family(
    name="birefnet",
    description="BiRefNet: Pillow bilinear resize, ImageNet mean/std, logits through a sigmoid",
    default_size=(1024, 1024),
    norm=IMAGENET,
    down="pil-bilinear",
    up="pil-bicubic",
    activation="sigmoid",
    final_output="last",
    # their ToPILImage truncates pred·255 at the network's size (measured against their code
    # with random weights: rounding instead leaves 2-3 levels apart, truncating ≤ 1)
    quantize="floor",
)
