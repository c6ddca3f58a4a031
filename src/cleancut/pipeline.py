"""The IS-Net pipeline as pure functions on numpy arrays (no I/O, no model).

Pre- and post-processing follow IMG.LY's reference (``@imgly/background-removal`` 1.4.x):

* resize: bilinear on the grid ``src = dst · (src_size / dst_size)`` (no half-pixel offset),
  neighbours ``floor``/``ceil`` clamped to the edge, rounded half up — see
  :func:`resize_bilinear`. Using the same grid both ways matters: the down- and up-sampling
  offsets cancel, so the mask lands exactly on the subject.
* preprocess: RGB to the network's size ignoring aspect, normalised as the model's family
  says (``(v − 128) / 256`` for IMG.LY's IS-Net), NCHW float32;
* postprocess: ``v · 255`` to uint8 (rounded; the reference truncates, which caps alpha at
  254 — see :func:`postprocess`), resized back to the full image size.

Which resize and which normalisation a model needs comes from its family's recipe
(:class:`cleancut.models.families.Recipe`); the functions here take them as arguments.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
from PIL import ImageColor

from .errors import InvalidOptionError

if TYPE_CHECKING:
    from .models.families.base import Downsample, Normalization, Upsample

__all__ = [
    "OUTPUT_TYPES",
    "OutputType",
    "apply_mask",
    "compose",
    "flatten",
    "normalize_output_type",
    "parse_color",
    "postprocess",
    "preprocess",
    "quantize",
    "resize_bilinear",
]

OutputType = Literal["foreground", "background", "mask"]
OUTPUT_TYPES: Final[tuple[OutputType, ...]] = ("foreground", "background", "mask")

# Output elements computed per step when resizing: bounds the float64 temporaries to a few
# tens of MB whatever the image size (a 24 MP mask would otherwise need ~1 GB of them).
_RESIZE_BLOCK_ELEMENTS: Final = 1 << 20


def _axis_grid(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: ``floor`` and ``ceil`` neighbours (clamped) and the fraction."""
    pos = np.arange(dst, dtype=np.float64) * (src / dst)
    lo = np.floor(pos).astype(np.intp)
    np.clip(lo, 0, src - 1, out=lo)
    hi = np.minimum(np.ceil(pos).astype(np.intp), src - 1)
    frac = pos - lo
    return lo, hi, frac


def resize_bilinear(src: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of ``[H, W]`` or ``[H, W, C]`` uint8 on IMG.LY's sampling grid.

    For every destination pixel ``(x, y)``: ``sx = x · W/width``, ``sy = y · H/height``;
    neighbours ``floor`` and ``ceil`` (clamped), ``dx``/``dy`` the distances to the lower
    ones, and ``v = (1−dx)(1−dy)·p1 + dx(1−dy)·p2 + (1−dx)dy·p3 + dx·dy·p4`` rounded half up
    (``Math.round``).

    The sum is evaluated in float64 with the reference's own order of operations (weight
    products first, then left to right), not separably: a separable evaluation is
    mathematically equal but rounds differently, and flips the result by 1 wherever ``v``
    is a tie such as 153.5 (these occur with non-dyadic ratios, e.g. 13 → 7 px). Rows are
    processed in blocks to bound memory.
    """
    if src.dtype != np.uint8 or src.ndim not in (2, 3):
        raise InvalidOptionError(f"resize_bilinear expects uint8 [H, W(, C)], got {src.dtype} {src.shape}")
    if height < 1 or width < 1:
        raise InvalidOptionError(f"target size must be positive, got {width}×{height}")
    sh, sw = src.shape[:2]
    if sh < 1 or sw < 1:
        raise InvalidOptionError(f"cannot resize an empty image ({sw}×{sh})")
    if (sh, sw) == (height, width):
        return src.copy()
    y1, y2, dy = _axis_grid(sh, height)
    x1, x2, dx = _axis_grid(sw, width)
    wx = 1.0 - dx
    wy = 1.0 - dy
    # weights are [rows, width]; with channels they broadcast over the last axis
    ch: tuple[slice | None, ...] = (slice(None), slice(None), None) if src.ndim == 3 else (slice(None),)

    out = np.empty((height, width, *src.shape[2:]), dtype=np.uint8)
    per_row = width * (1 if src.ndim == 2 else src.shape[2])
    block = max(1, _RESIZE_BLOCK_ELEMENTS // per_row)
    for start in range(0, height, block):
        stop = min(height, start + block)
        top = src[y1[start:stop]]
        bottom = src[y2[start:stop]]
        wyb = wy[start:stop, None]
        dyb = dy[start:stop, None]
        v = (wx * wyb)[ch] * top[:, x1]  # (1 − dx)(1 − dy)·p1
        v += (dx * wyb)[ch] * top[:, x2]  # + dx(1 − dy)·p2
        v += (wx * dyb)[ch] * bottom[:, x1]  # + (1 − dx)dy·p3
        v += (dx * dyb)[ch] * bottom[:, x2]  # + dx·dy·p4
        # Math.round exactly (floor(v + 0.5) would round 0.49999999999999994 up)
        r = np.floor(v)
        v -= r
        r += v >= 0.5
        out[start:stop] = r
    return out


def preprocess(
    pixels: np.ndarray,
    height: int,
    width: int | None = None,
    *,
    norm: Normalization,
    down: Downsample = "imgly",
) -> np.ndarray:
    """RGB(A) uint8 ``[H, W, C]`` → network input ``[1, 3, height, width]`` float32.

    Alpha is ignored, as in the reference. ``down`` is the resize the model's reference
    uses (:data:`cleancut.models.families.base.Downsample`): ``imgly`` is IMG.LY's grid
    through OpenCV (:func:`_resize_fast`: an order of magnitude faster than the exact port,
    values within one level of it, the fp16 model's mask moving by 0.005/255 on average);
    ``imgly-exact`` the exact port, for dynamically quantised graphs (measured: a one-level
    input change can move their output by 218/255). ``norm``: ``x = (v·scale − mean) / std``
    per network channel.
    """
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype != np.uint8:
        raise InvalidOptionError(f"preprocess expects uint8 [H, W, 3|4], got {pixels.dtype} {pixels.shape}")
    import cv2

    width = height if width is None else width
    planes = _downsample(pixels, height, width, down)
    # Plane by plane straight into the NCHW tensor, one OpenCV pass each (v·a + b in float32;
    # for IMG.LY's (v − 128)/256 every step is exact, a dyadic fraction), cheaper than numpy's
    # subtract-then-scale or converting the interleaved image and transposing it; in a folder
    # batch these stages share the cores with the model.
    x = np.empty((1, 3, height, width), dtype=np.float32)
    for c, (src, a, b) in enumerate(norm.affine()):
        plane = planes[src]
        cv2.addWeighted(plane, a, plane, 0.0, b, dst=x[0, c], dtype=cv2.CV_32F)
    return x


def _downsample(pixels: np.ndarray, height: int, width: int, down: Downsample) -> list[np.ndarray]:
    """The R, G, B planes of ``pixels`` at ``height`` × ``width``, resized as ``down`` says."""
    import cv2

    rgb = np.ascontiguousarray(pixels[:, :, :3])
    if down == "imgly":
        return downsample_planes(pixels, height, width)
    if down == "imgly-exact":
        return list(cv2.split(resize_bilinear(rgb, height, width)))
    if down == "bilinear":
        return list(cv2.split(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)))
    if down in ("pil-bilinear", "pil-lanczos"):
        from PIL import Image

        resample = Image.Resampling.BILINEAR if down == "pil-bilinear" else Image.Resampling.LANCZOS
        small = np.asarray(Image.fromarray(rgb, "RGB").resize((width, height), resample))
        return list(cv2.split(np.ascontiguousarray(small)))
    raise InvalidOptionError(f"unknown downsampling {down!r}")


def quantize(output: np.ndarray, *, truncate: bool = False) -> np.ndarray:
    """One network output (``[..., S, S]`` in 0..1) → ``[S, S]`` uint8, rounded half up
    (see :func:`postprocess` for why not truncated), or truncated where a family's
    reference does so (``truncate``: BiRefNet's ``ToPILImage``)."""
    m = np.asarray(output, dtype=np.float32)
    if m.ndim < 2 or m.size != m.shape[-2] * m.shape[-1] or m.size == 0:
        raise InvalidOptionError(f"expected one [..., S, S] prediction, got shape {m.shape}")
    m = m.reshape(m.shape[-2:])
    # floor(v·255 + 0.5) in float64 (exact for a float32 v), in place: clipping to
    # [0, 255.5] after the shift equals clipping v to [0, 1] first, and the cast of a
    # non-negative value truncates, which is the floor. ``fmax`` returns its non-NaN
    # argument, so NaN (a broken model or provider) becomes background instead of an
    # undefined cast, in the clipping pass itself (half the time of np.clip +
    # np.nan_to_num).
    v = np.multiply(m, 255.0, dtype=np.float64)
    if not truncate:
        v += 0.5
    np.fmax(v, 0.0, out=v)
    np.fmin(v, 255.0 if truncate else 255.5, out=v)
    m8: np.ndarray = v.astype(np.uint8)
    return m8


def postprocess(
    output: np.ndarray,
    height: int,
    width: int,
    *,
    exact: bool | None = None,
    up: Upsample | None = None,
    truncate: bool = False,
) -> np.ndarray:
    """Network output (``[..., S, S]`` in 0..1) → ``[height, width]`` uint8 mask.

    ``v · 255`` rounded half up, then resized to the image's own size: the mask is always
    full resolution. The reference truncates instead (it writes floats into a
    ``Uint8Array``); the network's largest output is 0.9999999, so truncation caps alpha at
    254 and no pixel of a cut-out is ever opaque. Rounding moves each value by at most one
    level and gives the subject its full 255.

    ``up``: the model's upsampling (:data:`cleancut.models.families.base.Upsample`); when
    not given, ``exact`` picks IMG.LY's grid: ``True`` always the exact port of the reference
    resize, ``False`` always OpenCV on the same grid (within one level, much faster),
    ``None`` OpenCV above 2 MP only. ``up="imgly"`` is ``exact=False``, ``"imgly-exact"``
    is ``exact=True``. ``truncate``: ``v · 255`` truncated, where the model's reference does.
    """
    m8 = quantize(output, truncate=truncate)
    if up == "imgly-exact":
        exact = True
    elif up == "imgly":
        exact = False
    elif up == "bilinear" or up == "pil-bicubic":
        if m8.shape == (height, width):
            return m8
        if up == "bilinear":
            import cv2

            out: np.ndarray = cv2.resize(m8, (width, height), interpolation=cv2.INTER_LINEAR)
            return out
        from PIL import Image

        return np.asarray(Image.fromarray(m8, "L").resize((width, height), Image.Resampling.BICUBIC)).copy()
    elif up is not None:
        raise InvalidOptionError(f"unknown upsampling {up!r}")
    fast = height * width > _FAST_UPSAMPLE_PIXELS if exact is None else not exact
    if fast:
        return _resize_fast(m8, height, width)
    return resize_bilinear(m8, height, width)


#: Above this many output pixels the mask is upsampled with OpenCV (see :func:`_resize_fast`).
_FAST_UPSAMPLE_PIXELS: Final = 1 << 21


def downsample_planes(pixels: np.ndarray, size: int, width: int | None = None) -> list[np.ndarray]:
    """The R, G, B planes of ``pixels`` (``[H, W, 3|4]`` uint8) resized to ``size``² (or
    ``size`` × ``width``) on the reference grid with OpenCV (:func:`_resize_fast`), what the network sees.

    OpenCV's bilinear ``warpAffine`` has a vectorised path for four channels and none for
    three: widening RGB to RGBA first and warping four channels costs less than half of
    warping three, with identical values in R, G and B. A fourth channel already there
    (alpha) is warped and dropped.
    """
    import cv2

    if pixels.shape[2] == 3:
        pixels = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2RGBA)
    resized = _resize_fast(np.ascontiguousarray(pixels), size, size if width is None else width)
    return list(cv2.split(resized)[:3])


def _resize_fast(src: np.ndarray, height: int, width: int) -> np.ndarray:
    """The reference grid through OpenCV's ``warpAffine`` (inverse map ``x·W/w, y·H/h``,
    edge replicated), for masks bigger than 2 MP.

    OpenCV quantises bilinear weights to 1/32, so a value can differ by one level from
    :func:`resize_bilinear` (measured on a model mask upsampled to 12 MP: 0.0006 % of
    pixels, never more than 1), and an order of magnitude faster.
    """
    import cv2

    sh, sw = src.shape[:2]
    inverse = np.array([[sw / width, 0.0, 0.0], [0.0, sh / height, 0.0]], dtype=np.float64)
    out: np.ndarray = cv2.warpAffine(
        src, inverse, (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return out


def _mul_alpha(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``round(a · b / 255)`` for uint8 arrays, exact integer arithmetic."""
    prod = a.astype(np.uint16) * b.astype(np.uint16) + 128
    return ((prod + (prod >> 8)) >> 8).astype(np.uint8)


def apply_mask(pixels: np.ndarray, mask: np.ndarray, *, invert: bool = False) -> np.ndarray:
    """RGBA whose alpha is ``mask`` (or ``255 − mask``), combined with any alpha already there."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InvalidOptionError(f"pixels must be uint8 [H, W, 3|4], got {pixels.dtype} {pixels.shape}")
    if pixels.shape[:2] != mask.shape[:2]:
        raise InvalidOptionError(
            f"mask is {mask.shape[1]}×{mask.shape[0]} but the image is "
            f"{pixels.shape[1]}×{pixels.shape[0]}; they must match"
        )
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise InvalidOptionError(f"mask must be uint8 [H, W], got {mask.dtype} {mask.shape}")
    import cv2

    alpha = 255 - mask if invert else mask
    if pixels.shape[2] == 4:
        alpha = _mul_alpha(alpha, pixels[:, :, 3])
    # cv2.merge interleaves in one pass, several times faster than numpy's strided copies.
    out: np.ndarray = cv2.merge([*cv2.split(np.ascontiguousarray(pixels[:, :, :3])), alpha])
    return out


def compose(pixels: np.ndarray, mask: np.ndarray, output_type: OutputType) -> np.ndarray:
    """The output pixels for an output type: RGBA for foreground/background, gray for mask."""
    if output_type == "foreground":
        return apply_mask(pixels, mask)
    if output_type == "background":
        return apply_mask(pixels, mask, invert=True)
    if output_type == "mask":
        return mask
    raise InvalidOptionError(f"unknown output type {output_type!r}")


def flatten(rgba: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Composite RGBA over an opaque colour → RGB (for JPEG and other alpha-less outputs)."""
    if rgba.ndim == 2 or rgba.shape[2] == 3:
        return rgba
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise InvalidOptionError(f"flatten expects uint8 [H, W, 3|4], got {rgba.dtype} {rgba.shape}")
    a = rgba[:, :, 3:4].astype(np.uint16)
    rgb = rgba[:, :, :3].astype(np.uint16)
    bg = np.asarray(parse_color(color), dtype=np.uint16).reshape(1, 1, 3)
    # round((rgb·a + bg·(255 − a)) / 255) exactly, in integers (no ties: 255 is odd).
    v = rgb * a + bg * (255 - a) + 128
    out: np.ndarray = ((v + (v >> 8)) >> 8).astype(np.uint8)
    return out


def normalize_output_type(value: str) -> OutputType:
    """``foreground``/``fg``, ``background``/``bg``, ``mask``/``alpha``/``alphamask``."""
    if not isinstance(value, str):
        raise InvalidOptionError(f"output type must be a string, got {value!r}")
    key = value.strip().lower()
    aliases: dict[str, OutputType] = {
        "foreground": "foreground",
        "fg": "foreground",
        "background": "background",
        "bg": "background",
        "mask": "mask",
        "alpha": "mask",
        "alphamask": "mask",
    }
    try:
        return aliases[key]
    except KeyError:
        raise InvalidOptionError(
            f"unknown output type {value!r}; choose one of: {', '.join(OUTPUT_TYPES)}"
        ) from None


def parse_color(value: str | tuple[int, int, int] | None) -> tuple[int, int, int]:
    """``'white'``, ``'#ffcc00'``, ``'#fc0'``, ``'255,204,0'``, ``'rgb(255,204,0)'`` or a
    tuple/list of three integers 0..255 → RGB tuple (``None``: white)."""
    if value is None:
        return (255, 255, 255)
    if not isinstance(value, str):
        try:
            items = list(value)
        except TypeError:
            items = []
        if len(items) == 3 and all(
            isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)) and 0 <= c <= 255
            for c in items
        ):
            return (int(items[0]), int(items[1]), int(items[2]))
        raise InvalidOptionError(f"a colour tuple needs three integers 0..255, got {value!r}")
    text = value.strip()
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1 and all(re.fullmatch(r"[+-]?[0-9]+", p) for p in parts):
        nums = [int(p) for p in parts]
        if len(nums) == 3 and all(0 <= n <= 255 for n in nums):
            return (nums[0], nums[1], nums[2])
        raise InvalidOptionError(f"colour {value!r} is not R,G,B with values 0..255")
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise InvalidOptionError(f"unknown colour {value!r}; use a name (white), #rrggbb or R,G,B") from None
    return (rgb[0], rgb[1], rgb[2])
