"""``isnet-imgly``: IS-Net (DIS) as IMG.LY's ``@imgly/background-removal`` runs it.

Their pre-processing: the photo resized to 1024² on their own bilinear grid
(``src = dst · s/S``, no half-pixel offset), ``(v − 128) / 256`` per channel; the graph's first
output is the final map, already in 0..1. Their graphs' upsampling targets are constants,
so the same weights also run at 768² (fast and best modes). A dynamically quantised graph
(``isnet_quint8``) is fed on the exact port of their resize: its output can jump on a
one-level input change.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Downsample, Family, GraphInfo, Normalization, Recipe, Upsample

__all__ = ["FAMILY", "published_recipe"]


@dataclass(frozen=True)
class _IsnetImgly(Family):
    def sampling(self, info: GraphInfo) -> tuple[Downsample, Upsample]:
        if info.quantized:
            return "imgly-exact", "imgly-exact"
        return self.down, self.up


FAMILY = _IsnetImgly(
    name="isnet-imgly",
    description="IS-Net as IMG.LY runs it: their resize grid, (v − 128) / 256, probabilities out",
    default_size=(1024, 1024),
    norm=Normalization(scale=1.0, mean=(128.0, 128.0, 128.0), std=(256.0, 256.0, 256.0)),
    down="imgly",
    up="imgly",
    activation="none",
    final_output="first",
    fast_scale=0.75,
    best_scale=0.75,
    # chosen on the dev set's tune half for IS-Net (README, Quality)
    average_gain=1.5,
)


def published_recipe(*, quantized: bool = False) -> Recipe:
    """The recipe of IMG.LY's published graphs (static 1024² input, resizable upsampling
    targets; ``quantized``: ``isnet_quint8``), without reading a file: what the page's
    in-browser IS-Net and tools that feed IS-Net directly use."""
    ops = frozenset({"ConvInteger"}) if quantized else frozenset()
    info = GraphInfo(
        input_name="input",
        input_shape=(1, 3, 1024, 1024),
        input_type="float",
        outputs=(("output", (1, 1, 1024, 1024), "float"),),
        op_types=ops,
        resizable=True,
    )
    return FAMILY.recipe(info)
