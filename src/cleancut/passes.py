"""Quality modes: which network passes a cut-out runs, and how their outputs are combined.

* ``default`` — one pass on the photo resized to the model's input size (the reference).
* ``best`` — test-time augmentation: the photo at the model's size, also mirrored left-right
  (its output mirrored back), and, where the model's graph can run at other sizes, the same
  pair at a second size (IS-Net: 1024² and 768²), averaged; the dev set's report half
  scores it for IS-Net in the README's quality table.
* ``fast`` — one pass at a smaller size where the graph allows it (IS-Net: 768²), else the
  default pass.

Which passes each mode runs is the model family's choice, in its recipe
(:meth:`cleancut.models.families.Recipe.passes`). A pass at another size runs the same weights
on a graph whose upsampling targets are rescaled (:func:`cleancut.models.graph.with_input_size`).
Outputs of several passes are averaged on the largest pass's grid (bilinear on the reference
grid, so they stay aligned), then sharpened by the recipe's gain in logit space: where the
passes disagree the mean drifts towards 0.5, which softens edges; the gain restores the
single pass's contrast (IS-Net's 1.5 was chosen on the dev set's tune half).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, get_args

import numpy as np

from .errors import InvalidOptionError
from .models.families.base import Pass

if TYPE_CHECKING:
    from .models.families.base import Recipe

__all__ = [
    "MODE_HELP",
    "QUALITY_MODES",
    "Pass",
    "QualityMode",
    "combine",
    "normalize_quality_mode",
    "pass_input",
]

QualityMode = Literal["fast", "default", "best"]
QUALITY_MODES: Final[tuple[str, ...]] = get_args(QualityMode)
#: One help text for every front (CLI, HTTP, page).
MODE_HELP: Final = (
    "Quality mode: default (one pass at the model's size, the reference's), best (that pass "
    "and its mirror, and for IS-Net the same pair at 768², averaged: about 3.1× the network "
    "time for IS-Net) or fast (one smaller pass where the model allows it: IS-Net at 768²)."
)


def normalize_quality_mode(value: object) -> QualityMode:
    """``value`` as a quality mode, or :class:`InvalidOptionError` naming the choices."""
    if isinstance(value, str) and value.strip().lower() in QUALITY_MODES:
        mode: QualityMode = value.strip().lower()  # type: ignore[assignment]
        return mode
    raise InvalidOptionError(f"mode must be one of {', '.join(QUALITY_MODES)}, got {value!r}")


def pass_input(pixels: np.ndarray, p: Pass, recipe: Recipe) -> np.ndarray:
    """The network input ``[1, 3, H, W]`` float32 for one pass, fed as ``recipe`` says."""
    from .pipeline import preprocess

    h, w = p.shape
    x = preprocess(pixels, h, w, norm=recipe.norm, down=recipe.down)
    if p.flip:
        x = np.ascontiguousarray(x[..., ::-1])
    return x


def pass_output(y: np.ndarray, p: Pass) -> np.ndarray:
    """A pass's network output ``[1, 1, S, S]`` back in the photo's orientation."""
    return np.ascontiguousarray(y[..., ::-1]) if p.flip else y


def combine(outputs: list[np.ndarray], gain: float = 1.0) -> np.ndarray:
    """The mean of several passes' outputs (each ``[..., H_i, W_i]`` in 0..1), sharpened by
    ``gain`` in logit space, as ``[1, 1, H, W]`` float32, ``H × W`` the largest size; one
    output is returned as it is."""
    if not outputs:
        raise InvalidOptionError("combine needs at least one network output")
    if len(outputs) == 1:
        return outputs[0]
    import cv2

    height, width = max((int(y.shape[-2]), int(y.shape[-1])) for y in outputs)
    total = np.zeros((height, width), dtype=np.float32)
    for y in outputs:
        plane: np.ndarray = np.asarray(y, dtype=np.float32).reshape(y.shape[-2:])
        if plane.shape != (height, width):
            # the reference grid (src = dst·s/S, no half-pixel offset), as every resize here
            sy, sx = plane.shape[0] / height, plane.shape[1] / width
            matrix = np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0]], dtype=np.float64)
            plane = cv2.warpAffine(
                plane,
                matrix,
                (width, height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        total += plane
    total /= np.float32(len(outputs))
    out: np.ndarray = sharpen(total, gain)[None, None]
    return out


def sharpen(y: np.ndarray, gain: float) -> np.ndarray:
    """``sigmoid(gain · logit(y))`` in float32: 0, 0.5 and 1 stay, the rest move away from 0.5
    (``gain`` > 1). Exact 0 and 1 are kept (the logit is taken on ``y`` clipped to 1e-6)."""
    if gain == 1.0:
        return y
    z = np.clip(y, np.float32(1e-6), np.float32(1 - 1e-6))
    logit = np.log(z / (np.float32(1) - z)) * np.float32(gain)
    out: np.ndarray = (np.float32(1) / (np.float32(1) + np.exp(-logit))).astype(np.float32)
    out[y <= 0] = 0.0
    out[y >= 1] = 1.0
    return out
