"""Quality modes: which network passes a cut-out runs, and how their outputs are combined.

* ``default`` — one pass on the photo resized to 1024² (the reference pipeline).
* ``best`` — test-time augmentation: the photo at 1024² and at 768², each also mirrored
  left-right (its output mirrored back), averaged. About 3.1× the network work of
  ``default``; the dev set's report half scores it in the README's quality table.
* ``fast`` — one pass at 768² (0.56× the network work of ``default``).

A pass at another size runs the same weights on a graph whose upsampling targets are
rescaled (:func:`cleancut.models.graph.with_input_size`). Outputs of several passes are averaged
on the largest pass's grid (bilinear on the reference grid, so they stay aligned), then
sharpened by :data:`AVERAGE_GAIN` in logit space: where the passes disagree the mean drifts
towards 0.5, which softens edges; the gain restores the single pass's contrast (chosen on the
dev set's tune half: it lowers MAE without costing S-measure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np

from .errors import InvalidOptionError

__all__ = [
    "AVERAGE_GAIN",
    "MODE_HELP",
    "QUALITY_MODES",
    "Pass",
    "QualityMode",
    "combine",
    "normalize_quality_mode",
    "pass_input",
    "passes_for",
]

QualityMode = Literal["fast", "default", "best"]
QUALITY_MODES: Final[tuple[str, ...]] = get_args(QualityMode)
#: One help text for every front (CLI, HTTP, page).
MODE_HELP: Final = (
    "Quality mode: default (one 1024² pass, the reference's), best (1024² and 768² passes, each "
    "also mirrored, averaged: about 3.1× the network time) or fast (one 768² pass)."
)


@dataclass(frozen=True)
class Pass:
    """One network run: the photo resized to ``size``², mirrored left-right if ``flip``."""

    size: int = 1024
    flip: bool = False


#: Logit gain applied to an average of several passes (1 would leave it as averaged).
AVERAGE_GAIN: Final = 1.5

_PASSES: Final[dict[str, tuple[Pass, ...]]] = {
    "fast": (Pass(768),),
    "default": (Pass(1024),),
    "best": (Pass(1024), Pass(1024, flip=True), Pass(768), Pass(768, flip=True)),
}


def normalize_quality_mode(value: object) -> QualityMode:
    """``value`` as a quality mode, or :class:`InvalidOptionError` naming the choices."""
    if isinstance(value, str) and value.strip().lower() in QUALITY_MODES:
        mode: QualityMode = value.strip().lower()  # type: ignore[assignment]
        return mode
    raise InvalidOptionError(f"mode must be one of {', '.join(QUALITY_MODES)}, got {value!r}")


def passes_for(mode: str) -> tuple[Pass, ...]:
    return _PASSES[normalize_quality_mode(mode)]


def pass_input(pixels: np.ndarray, p: Pass, *, exact: bool) -> np.ndarray:
    """The network input ``[1, 3, S, S]`` float32 for one pass."""
    from .pipeline import preprocess

    x = preprocess(pixels, p.size, exact=exact)
    if p.flip:
        x = np.ascontiguousarray(x[..., ::-1])
    return x


def pass_output(y: np.ndarray, p: Pass) -> np.ndarray:
    """A pass's network output ``[1, 1, S, S]`` back in the photo's orientation."""
    return np.ascontiguousarray(y[..., ::-1]) if p.flip else y


def combine(outputs: list[np.ndarray], gain: float = AVERAGE_GAIN) -> np.ndarray:
    """The mean of several passes' outputs (each ``[..., S_i, S_i]`` in 0..1), sharpened by
    ``gain`` in logit space, as ``[1, 1, S, S]`` float32, ``S`` the largest size; one output
    is returned as it is."""
    if not outputs:
        raise InvalidOptionError("combine needs at least one network output")
    if len(outputs) == 1:
        return outputs[0]
    import cv2

    size = max(int(y.shape[-1]) for y in outputs)
    total = np.zeros((size, size), dtype=np.float32)
    for y in outputs:
        plane: np.ndarray = np.asarray(y, dtype=np.float32).reshape(y.shape[-2:])
        if plane.shape[0] != size:
            # the reference grid (src = dst·s/S, no half-pixel offset), as every resize here
            scale = plane.shape[0] / size
            matrix = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]], dtype=np.float64)
            plane = cv2.warpAffine(
                plane,
                matrix,
                (size, size),
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
