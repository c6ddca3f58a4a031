"""Steady edges: a motion-gated temporal filter on the network's low-resolution output.

The network sees each frame alone, so on a still background or a still subject its output
wobbles from frame to frame with sensor noise and compression; the mask edge flickers. The
filter keeps a running average of the output per pixel, but only where the *image* did not
change: the frame difference (largest colour channel, averaged over small cells so that noise
cancels, widened by one cell so that a moving edge's neighbourhood counts as moving) opens a
gate from
``strength`` (still) to 0 (moving). Moving parts take the current output as it is, so motion
is never smeared; still parts average over a few frames (``strength`` 0.85 ≈ the last 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TemporalSmoother"]


@dataclass
class TemporalSmoother:
    """Call :meth:`step` once per frame, in order, with the frame and its network output
    ``[..., S, S]`` in 0..1; it returns the output to use instead (same shape, float32).

    ``strength``: weight of the running average where the image is still (0 turns the filter
    off). ``low``/``high``: mean colour change per cell (largest channel, 0..1) below which
    a cell is still and above which it is moving; in between the gate opens linearly.
    ``cell``: the side, in frame pixels, of the cells the difference is averaged over.
    ``jump_low``/``jump_high``: where the output itself moves by more than this from the
    running average (the network changed its mind about a still region, because the rest of
    the picture changed), the gate opens the same way, so the average does not lag."""

    strength: float = 0.85
    low: float = 3 / 255
    high: float = 12 / 255
    cell: int = 4
    jump_low: float = 0.15
    jump_high: float = 0.4
    _last: np.ndarray | None = field(default=None, init=False, repr=False)
    _state: np.ndarray | None = field(default=None, init=False, repr=False)

    def reset(self) -> None:
        """Forget the past (a cut in the clip, or a new clip)."""
        self._last = self._state = None

    def gate(self, pixels: np.ndarray) -> np.ndarray | None:
        """The weight of the past per cell (``[h, w]`` float32, ``strength`` where still, 0
        where moving), or ``None`` on the first frame or after a size change. Updates the
        kept frame."""
        import cv2

        h, w = pixels.shape[:2]
        gh, gw = max(1, h // self.cell), max(1, w // self.cell)
        rgb = np.ascontiguousarray(pixels[..., :3])
        small = cv2.resize(rgb, (gw, gh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        prev, self._last = self._last, small
        if prev is None or prev.shape != small.shape:
            return None
        change = np.abs(small - prev).max(axis=2)  # colour counts: red on gray can keep its luma
        diff: np.ndarray = cv2.dilate(change, np.ones((3, 3), np.uint8))
        still = np.clip((self.high - diff) / (self.high - self.low), 0.0, 1.0)
        gate: np.ndarray = (self.strength * still).astype(np.float32)
        return gate

    def step(self, pixels: np.ndarray, y: np.ndarray) -> np.ndarray:
        import cv2

        y = np.asarray(y, dtype=np.float32)
        k = self.gate(pixels)
        state = self._state
        if k is None or state is None or state.shape != y.shape or self.strength <= 0:
            self._state = y.copy()
            return y
        s = y.shape[-2:]
        kk: np.ndarray = cv2.resize(k, (s[1], s[0]), interpolation=cv2.INTER_LINEAR)
        kk = kk.reshape((1,) * (y.ndim - 2) + s)
        if self.jump_high > self.jump_low:
            jump = np.abs(y - state)
            kk = kk * np.clip((self.jump_high - jump) / (self.jump_high - self.jump_low), 0.0, 1.0)
        out: np.ndarray = (kk * state + (1.0 - kk) * y).astype(np.float32)
        self._state = out
        return out
