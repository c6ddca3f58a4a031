#!/usr/bin/env python3
"""What else was tried for ``best``, and what the quality goal would take (README, Quality).

    python benchmarks/quality_probes.py --probe passes    # more passes than best's four
    python benchmarks/quality_probes.py --probe pieces    # keep only the main pieces / fill holes
    python benchmarks/quality_probes.py --probe grabcut   # GrabCut seeded by the mask
    python benchmarks/quality_probes.py --probe zoom      # a second look on the subject's box or tiles
    python benchmarks/quality_probes.py --probe photometric  # passes on contrast/gamma-edited copies
    python benchmarks/quality_probes.py --probe geometry  # passes on a letterboxed / rotated photo
    python benchmarks/quality_probes.py --probe learned   # a classifier for the unsure pixels
    python benchmarks/quality_probes.py --probe oracle    # bounds, using the truth
    python benchmarks/quality_probes.py --probe errors    # where best's error lies

Every probe runs on the dev set's **tune** half by default (``--split``), from the network
outputs that ``benchmarks/quality.py`` caches (missing ones are computed), and prints JSON
and a table of MAE, S-measure and IoU per subset against the reference and ``best``.
None of these became a default; the README says why. ``learned`` trains on one half of the
split (by a second hash byte) and tests on the other; it needs scikit-learn.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import devset
from cleancut import pipeline
from cleancut.models.families.isnet_imgly import published_recipe
from cleancut.passes import Pass, combine, sharpen
from quality import Outputs, mask_scores, scored_truth

PROBES = ("passes", "pieces", "grabcut", "zoom", "photometric", "geometry", "learned", "oracle", "errors")
IMGLY = published_recipe()
AVERAGE_GAIN = IMGLY.average_gain
BEST = IMGLY.passes("best")
REF = (Pass(1024),)
#: The network is "unsure" of a pixel whose output is strictly between these.
UNSURE = (0.1, 0.9)

Plane = np.ndarray  # [S, S] float32 network output in 0..1


@dataclass
class Photo:
    """One dev-set photo as a probe sees it: its pixels, truth, the network outputs of the
    passes the probe needs (``o``), and a way to run the network on derived images."""

    name: str
    pixels: np.ndarray
    truth: np.ndarray
    o: dict[Pass, np.ndarray]
    outputs: Outputs

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.truth.shape
        return h, w

    def extra(self, key: str, image: np.ndarray, flip: bool = False) -> np.ndarray:
        """The 1024² network output ``[1, 1, S, S]`` for ``image`` (a crop, a tile, a
        retouched copy of the photo), cached by :class:`Outputs` as the photo's ``key``."""
        return self.outputs.get(f"{self.name}_{key}", np.ascontiguousarray(image), Pass(1024, flip))


Variant = Callable[[Photo], np.ndarray]


def soft(y: np.ndarray, h: int, w: int) -> np.ndarray:
    return pipeline.postprocess(y, h, w).astype(np.float32) / 255


def keep_pieces(y: np.ndarray, ratio: float, low: float = 0.05) -> np.ndarray:
    """Drop the connected pieces (of ``y > low``) whose mass is under ``ratio`` × the largest's."""
    import cv2

    plane = y.reshape(y.shape[-2:])
    n, labels = cv2.connectedComponents((plane > low).astype(np.uint8), connectivity=8)
    if n <= 2:
        return y
    mass = np.bincount(labels.ravel(), weights=plane.ravel(), minlength=n)
    mass[0] = 0
    keep = mass >= ratio * mass.max()
    keep[0] = False
    return np.where(keep[labels], plane, 0).astype(np.float32)[None, None]


def fill_holes(y: np.ndarray, max_fraction: float) -> np.ndarray:
    """Set to 1 the enclosed background pieces (``y < 0.5``) under ``max_fraction`` of the grid."""
    import cv2

    plane = y.reshape(y.shape[-2:]).copy()
    bg = (plane < 0.5).astype(np.uint8)
    n, labels = cv2.connectedComponents(bg, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    area = np.bincount(labels.ravel(), minlength=n)
    hole = np.ones(n, bool)
    hole[border] = False
    hole[0] = False
    hole &= area <= max_fraction * plane.size
    plane[hole[labels] & (bg > 0)] = 1.0
    return plane[None, None]


def grabcut(pixels: np.ndarray, mask: np.ndarray, blend: float) -> np.ndarray:
    """GrabCut at ≤ 512 px seeded by ``mask`` (sure outside the unsure range), its decision
    blended into the unsure pixels with weight ``blend``."""
    import cv2

    h, w = mask.shape
    s = min(1.0, 512 / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    img = cv2.cvtColor(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    small = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    lo, hi = UNSURE
    seeds = np.where(
        small >= hi,
        cv2.GC_FGD,
        np.where(small <= lo, cv2.GC_BGD, np.where(small >= 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD)),
    ).astype(np.uint8)
    unsure = (seeds == cv2.GC_PR_FGD) | (seeds == cv2.GC_PR_BGD)
    if not ((seeds == cv2.GC_FGD).any() and (seeds == cv2.GC_BGD).any() and unsure.any()):
        return mask
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(img, seeds, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    fg = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.float32)
    decided = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
    band = (mask > lo) & (mask < hi)
    out = mask.copy()
    out[band] = (1 - blend) * mask[band] + blend * decided[band]
    return out


def oracle_pieces(y: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Keep exactly the pieces of ``y`` that lie mostly inside the truth (a perfect subject rule)."""
    import cv2

    plane = y.reshape(y.shape[-2:])
    size = plane.shape[0]
    g = cv2.resize((truth >= 128).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    n, labels = cv2.connectedComponents((plane > 0.05).astype(np.uint8), connectivity=8)
    inside = np.bincount(labels.ravel(), weights=(plane * g).ravel(), minlength=n)
    outside = np.bincount(labels.ravel(), weights=(plane * (1 - g)).ravel(), minlength=n)
    keep = inside > outside
    keep[0] = False
    return np.where(keep[labels], plane, 0).astype(np.float32)[None, None]


def oracle_unsure(y: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The truth wherever the network is unsure (a perfect decision for those pixels)."""
    import cv2

    plane = y.reshape(y.shape[-2:]).copy()
    size = plane.shape[0]
    g = cv2.resize((truth >= 128).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    band = (plane > UNSURE[0]) & (plane < UNSURE[1])
    plane[band] = g[band]
    return plane[None, None]


def upsample(y: np.ndarray, h: int, w: int) -> np.ndarray:
    """A network plane ``[.., S, S]`` at ``h × w`` in float, on the reference grid (as
    :func:`soft`, without rounding to 8 bits)."""
    return pipeline._resize_fast(np.asarray(y, np.float32).reshape(y.shape[-2:]), h, w)


def subject_box(mask: np.ndarray, margin: float = 0.1) -> tuple[int, int, int, int] | None:
    """The box ``(y0, y1, x0, x1)`` round ``mask > 0.5`` widened by ``margin`` × its longer
    side, or None when there is no subject or the box covers most of the photo (> 70 %)."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask > 0.5)
    if ys.size == 0:
        return None
    m = margin * max(ys.max() - ys.min(), xs.max() - xs.min())
    y0, x0 = max(0, int(ys.min() - m)), max(0, int(xs.min() - m))
    y1, x1 = min(h, int(ys.max() + m) + 2), min(w, int(xs.max() + m) + 2)
    if (y1 - y0) * (x1 - x0) > 0.7 * h * w or min(y1 - y0, x1 - x0) < 16:
        return None
    return y0, y1, x0, x1


#: A full-size plane and where it has data (weight 0..1; None: everywhere).
Part = tuple[np.ndarray, np.ndarray | None]


def at_full_size(ph: Photo, passes: tuple[Pass, ...]) -> list[Part]:
    return [(upsample(ph.o[p], *ph.shape), None) for p in passes]


def weighted_mean(parts: list[Part]) -> np.ndarray:
    """The mean of full-size planes, each counted where it has data (0 where none has)."""
    total = np.zeros_like(parts[0][0])
    weight = np.zeros_like(parts[0][0])
    for y, valid in parts:
        v = 1.0 if valid is None else valid
        total += y * v
        weight += v
    return total / np.maximum(weight, 1e-6)


def best_at_full_size(ph: Photo) -> np.ndarray:
    """``best``'s passes averaged at the photo's size instead of on the 1024² grid, then
    sharpened: the control for the probes that fuse planes at full size."""
    return sharpen(weighted_mean(at_full_size(ph, BEST)), AVERAGE_GAIN)


def zoom_variants() -> dict[str, Variant]:
    """A closer look: the network run again at 1024² on the subject's box (and its mirror) or
    on four overlapping tiles (60 % of each side), fused with ``best``'s four passes."""
    lo, hi = UNSURE

    def passes_mean(ph: Photo) -> np.ndarray:
        return weighted_mean(at_full_size(ph, BEST))

    def crop(ph: Photo) -> tuple[list[Part], np.ndarray] | None:
        """The subject crop's two passes (the crop and its mirror) on the photo's grid, and
        the box they cover."""
        box = subject_box(best_at_full_size(ph))
        if box is None:
            return None
        y0, y1, x0, x1 = box
        image, key = ph.pixels[y0:y1, x0:x1], f"crop{y0}-{y1}-{x0}-{x1}"
        inside = np.zeros(ph.shape, np.float32)
        inside[y0:y1, x0:x1] = 1
        parts: list[Part] = []
        for flip in (False, True):
            plane = np.zeros(ph.shape, np.float32)
            plane[y0:y1, x0:x1] = upsample(ph.extra(key, image, flip), y1 - y0, x1 - x0)
            parts.append((plane, inside))
        return parts, inside

    def crop_mean(ph: Photo) -> np.ndarray:
        c = crop(ph)
        if c is None:
            return best_at_full_size(ph)
        return sharpen(weighted_mean(at_full_size(ph, BEST) + c[0]), AVERAGE_GAIN)

    def crop_band(ph: Photo) -> np.ndarray:
        out = best_at_full_size(ph)
        c = crop(ph)
        if c is None:
            return out
        parts, inside = c
        band = (inside > 0) & (out > lo) & (out < hi)
        out[band] = sharpen(weighted_mean(parts)[band], AVERAGE_GAIN)
        return out

    def tiles(ph: Photo) -> np.ndarray:
        """The four tiles' outputs blended with tent weights into one full-size plane."""
        h, w = ph.shape
        th, tw = max(16, int(h * 0.6)), max(16, int(w * 0.6))
        tent = np.outer(*(np.maximum(1 - np.abs(np.linspace(-1, 1, n, dtype=np.float32)), 0.05)
                          for n in (th, tw)))  # fmt: skip
        parts: list[Part] = []
        for i, (y0, x0) in enumerate((y, x) for y in (0, h - th) for x in (0, w - tw)):
            plane, weight = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
            plane[y0 : y0 + th, x0 : x0 + tw] = upsample(
                ph.extra(f"tile{i}", ph.pixels[y0 : y0 + th, x0 : x0 + tw]), th, tw
            )
            weight[y0 : y0 + th, x0 : x0 + tw] = tent
            parts.append((plane, weight))
        return weighted_mean(parts)

    def tiles_band(ph: Photo) -> np.ndarray:
        out = best_at_full_size(ph)
        band = (out > lo) & (out < hi)
        out[band] = 0.5 * out[band] + 0.5 * tiles(ph)[band]
        return out

    return {
        "best, averaged at full size (control)": best_at_full_size,
        "best + subject crop, averaged": crop_mean,
        "best, unsure band from the subject crop": crop_band,
        "best + tiles, averaged (5 parts)": lambda ph: sharpen(
            (4 * passes_mean(ph) + tiles(ph)) / 5, AVERAGE_GAIN
        ),
        "best, unsure band half from tiles": tiles_band,
    }


def photometric_variants() -> dict[str, Variant]:
    """Colour test-time augmentation: 1024² passes on retouched copies of the photo
    (contrast stretched per channel, gamma 0.7 and 1.4), averaged in with ``best``'s four, or
    the gamma pair in place of some of them."""
    import cv2

    def stretch(px: np.ndarray) -> np.ndarray:
        lo_, hi_ = np.percentile(px[..., :3], (1, 99), axis=(0, 1))
        return np.clip((px[..., :3] - lo_) * (255 / np.maximum(hi_ - lo_, 1)), 0, 255).astype(np.uint8)

    def gamma(g: float) -> Callable[[np.ndarray], np.ndarray]:
        lut = np.clip(255 * (np.arange(256) / 255) ** g + 0.5, 0, 255).astype(np.uint8)
        return lambda px: cv2.LUT(np.ascontiguousarray(px[..., :3]), lut)

    edits = {"stretch": stretch, "gamma0.7": gamma(0.7), "gamma1.4": gamma(1.4)}

    def with_edits(keys: tuple[str, ...], passes: tuple[Pass, ...] = BEST) -> Variant:
        def f(ph: Photo) -> np.ndarray:
            ys = [ph.o[p] for p in passes] + [ph.extra(k, edits[k](ph.pixels)) for k in keys]
            return soft(combine(ys, AVERAGE_GAIN), *ph.shape)

        return f

    gammas = ("gamma0.7", "gamma1.4")
    return {
        "best + contrast-stretched pass": with_edits(("stretch",)),
        "best + gamma 0.7 and 1.4 passes": with_edits(gammas),
        "best + all three": with_edits(("stretch", *gammas)),
        # the gamma pair in place of best's mirrored 1024² pass (5 passes), or of both 1024²
        # passes (4 passes, the same network time as best)
        "768 pair + 1024 + gamma pair": with_edits(gammas, (Pass(1024), Pass(768), Pass(768, flip=True))),
        "768 pair + gamma pair (best's cost)": with_edits(gammas, (Pass(768), Pass(768, flip=True))),
    }


def letterboxed(pixels: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The photo's RGB centred on a square of the network's zero grey (128), and the map of a
    plane on that square back to the photo's ``h × w``."""
    h, w = pixels.shape[:2]
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    square = np.full((s, s, 3), 128, np.uint8)
    square[top : top + h, left : left + w] = pixels[..., :3]
    return square, lambda plane: plane[top : top + h, left : left + w]


def rotated(
    pixels: np.ndarray, degrees: float
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """The photo's RGB rotated by ``degrees`` about its centre in its own frame (edges
    reflected), the map of a plane on the rotated photo back onto the photo, and where that
    map has data (1) or falls outside the rotated frame (0)."""
    import cv2

    h, w = pixels.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    image = cv2.warpAffine(np.ascontiguousarray(pixels[..., :3]), m, (w, h),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip
    back = partial(cv2.warpAffine, M=m, dsize=(w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    valid = back(np.ones((h, w), np.float32), borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return image, lambda plane: back(plane, borderMode=cv2.BORDER_REPLICATE), valid


def geometry_variants() -> dict[str, Variant]:
    """Geometric test-time augmentation: 1024² passes on the photo padded to a square with
    the network's zero grey (no aspect distortion; and its mirror), or rotated by ±6° (edges
    reflected), mapped back to the photo and averaged with ``best``'s passes at full size."""

    def letterbox(ph: Photo) -> list[Part]:
        square, back = letterboxed(ph.pixels)
        s = square.shape[0]
        return [(back(upsample(ph.extra("box", square, flip), s, s)), None) for flip in (False, True)]

    def rotations(ph: Photo) -> list[Part]:
        out: list[Part] = []
        for deg in (-6, 6):
            image, back, valid = rotated(ph.pixels, deg)
            out.append((back(upsample(ph.extra(f"rot{deg}", image), *ph.shape)), valid))
        return out

    def mean(parts: list[Part]) -> np.ndarray:
        return sharpen(weighted_mean(parts), AVERAGE_GAIN)

    pair768 = (Pass(768), Pass(768, flip=True))
    return {
        "best, averaged at full size (control)": best_at_full_size,
        "best + letterbox pair": lambda ph: mean(at_full_size(ph, BEST) + letterbox(ph)),
        "best + rotations ±6°": lambda ph: mean(at_full_size(ph, BEST) + rotations(ph)),
        "best + both (8 passes)": lambda ph: mean(at_full_size(ph, BEST) + letterbox(ph) + rotations(ph)),
        "768 pair + letterbox pair (best's cost)": lambda ph: mean(at_full_size(ph, pair768) + letterbox(ph)),
        "768 pair + rotations (best's cost)": lambda ph: mean(at_full_size(ph, pair768) + rotations(ph)),
    }


def mean_of(
    passes: tuple[Pass, ...], gain: float | None = None
) -> Callable[[dict[Pass, np.ndarray]], np.ndarray]:
    def f(o: dict[Pass, np.ndarray]) -> np.ndarray:
        ys = [o[p] for p in passes]
        return combine(ys, AVERAGE_GAIN) if gain is None else combine(ys, gain=gain)

    return f


def probe_variants(probe: str) -> tuple[set[Pass], dict[str, Variant]]:
    """The passes a probe needs and its variants: each maps (outputs, pixels, truth) → a
    full-resolution soft mask in 0..1."""
    need = set(BEST)
    best = mean_of(BEST)
    v: dict[str, Variant] = {
        "reference": lambda ph: soft(ph.o[REF[0]], *ph.shape),
        "best": lambda ph: soft(best(ph.o), *ph.shape),
    }
    if probe == "passes":
        p896 = (Pass(896), Pass(896, flip=True))
        p640 = (Pass(640), Pass(640, flip=True))
        need |= set(p896) | set(p640)
        for name, passes, gain in (
            ("best+896", BEST + p896, None),
            ("best+640", BEST + p640, None),
            ("best+896+640", BEST + p896 + p640, None),
            ("best+640, gain 2", BEST + p640, 2.0),
        ):
            f = mean_of(passes, gain)
            v[name] = lambda ph, f=f: soft(f(ph.o), *ph.shape)
    elif probe == "pieces":
        for r in (0.05, 0.3, 0.5):
            v[f"best, pieces >= {r:g} of the largest"] = lambda ph, r=r: soft(
                keep_pieces(best(ph.o), r), *ph.shape
            )
        for frac in (0.005, 0.02):
            v[f"best, holes < {frac:g} filled"] = lambda ph, fr=frac: soft(
                fill_holes(best(ph.o), fr), *ph.shape
            )
    elif probe == "grabcut":
        v["best + grabcut (hard)"] = lambda ph: grabcut(ph.pixels, soft(best(ph.o), *ph.shape), 1.0)
        v["best + grabcut (half)"] = lambda ph: grabcut(ph.pixels, soft(best(ph.o), *ph.shape), 0.5)
    elif probe == "zoom":
        v.update(zoom_variants())
    elif probe == "photometric":
        v.update(photometric_variants())
    elif probe == "geometry":
        v.update(geometry_variants())
    elif probe == "oracle":
        v["best, unsure pixels from the truth"] = lambda ph: soft(
            oracle_unsure(best(ph.o), ph.truth), *ph.shape
        )
        v["best, subject pieces from the truth"] = lambda ph: soft(
            oracle_pieces(best(ph.o), ph.truth), *ph.shape
        )
    return need, v


def score_mask(mask: np.ndarray, truth: np.ndarray, subset: str) -> dict[str, float]:
    m8 = np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8)
    return mask_scores(m8, scored_truth(truth, m8, subset), quick=True)


def run_probe(probe: str, split: devset.Split, limit: int | None, backend: str) -> list[dict[str, Any]]:
    outputs = Outputs("isnet_fp16", backend, devset.CACHE)
    need, variants = probe_variants(probe)
    rows = []
    for n, pair in enumerate(devset.pairs(split, limit=limit), 1):
        pixels, truth = pair.load()
        photo = Photo(pair.name, pixels, truth, {p: outputs.get(pair.name, pixels, p) for p in need}, outputs)
        for name, f in variants.items():
            rows.append({"method": name, "subset": pair.subset, **score_mask(f(photo), truth, pair.subset)})
        if n % 100 == 0:
            print(f"# {n} photos", file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------- learned


def _features(pixels: np.ndarray, ys: list[np.ndarray]) -> tuple[np.ndarray, tuple[int, int], np.ndarray]:
    """Per-pixel features at ≤ 512 px: the passes' logits, their mean and spread, Lab colour,
    the colour distance to the sure subject and background nearby (31 px box), how much of
    each is nearby, and the lightness gradient."""
    import cv2

    h, w = pixels.shape[:2]
    s = min(1.0, 512 / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    lab = cv2.cvtColor(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255,
                       cv2.COLOR_RGB2Lab)  # fmt: skip
    st = np.stack([cv2.resize(y[0, 0], size, interpolation=cv2.INTER_AREA) for y in ys], -1)
    st = np.clip(st, 1e-4, 1 - 1e-4)
    mean = st.mean(-1)
    box = (31, 31)

    def near(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = cv2.boxFilter(mask, -1, box, normalize=False) + 1e-3
        colour = np.stack(
            [cv2.boxFilter(lab[..., c] * mask, -1, box, normalize=False) / count for c in range(3)], -1
        )
        return np.linalg.norm(lab - colour, axis=-1) * (count > 1), count

    d_fg, n_fg = near((mean > 0.9).astype(np.float32))
    d_bg, n_bg = near((mean < 0.1).astype(np.float32))
    grad = np.hypot(cv2.Sobel(lab[..., 0], cv2.CV_32F, 1, 0), cv2.Sobel(lab[..., 0], cv2.CV_32F, 0, 1))
    extra = [mean, st.std(-1), d_fg, d_bg, d_fg - d_bg, np.log1p(n_fg), np.log1p(n_bg), grad]
    feats = np.concatenate([np.log(st / (1 - st)), lab, *[e[..., None] for e in extra]], -1)
    return feats, size, mean


def run_learned(split: devset.Split, limit: int | None, backend: str) -> list[dict[str, Any]]:
    import cv2
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    outputs = Outputs("isnet_fp16", backend, devset.CACHE)
    pairs = devset.pairs(split, limit=limit)
    half = [hashlib.sha256(p.name.encode()).digest()[1] < 128 for p in pairs]
    train = [p for p, a in zip(pairs, half, strict=True) if a]
    test = [p for p, a in zip(pairs, half, strict=True) if not a]
    lo, hi = 0.02, 0.98
    rng = np.random.default_rng(0)
    xs, ys_ = [], []
    for pair in train:
        pixels, truth = pair.load()
        feats, size, mean = _features(pixels, [outputs.get(pair.name, pixels, p) for p in BEST])
        g = cv2.resize((truth >= 128).astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
        band = (mean > lo) & (mean < hi)
        if pair.subset == "grabcut":
            band &= cv2.resize((truth != 128).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        idx = np.flatnonzero(band.ravel())
        if idx.size:
            idx = rng.choice(idx, min(3000, idx.size), replace=False)
            xs.append(feats.reshape(-1, feats.shape[-1])[idx])
            ys_.append(g.ravel()[idx])
    x, y = np.concatenate(xs), np.concatenate(ys_)
    print(f"# trained on {len(train)} photos, {len(y)} unsure pixels", file=sys.stderr, flush=True)
    models = {
        "best, unsure pixels by gradient boosting": HistGradientBoostingClassifier(max_iter=200).fit(x, y),
        "best, unsure pixels by logistic regression": LogisticRegression(max_iter=500).fit(x, y),
    }
    rows = []
    for pair in test:
        pixels, truth = pair.load()
        h, w = truth.shape
        outs = [outputs.get(pair.name, pixels, p) for p in BEST]
        best = soft(combine(outs, AVERAGE_GAIN), h, w)
        rows.append({"method": "best", "subset": pair.subset, **score_mask(best, truth, pair.subset)})
        feats, size, mean = _features(pixels, outs)
        band = (mean > lo) & (mean < hi)
        full_band = cv2.resize(band.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
        for name, model in models.items():
            prob = np.zeros(band.shape, np.float32)
            if band.any():
                prob[band] = model.predict_proba(feats[band])[:, 1]
            out = best.copy()
            out[full_band] = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)[full_band]
            rows.append({"method": name, "subset": pair.subset, **score_mask(out, truth, pair.subset)})
    return rows


# --------------------------------------------------------------------------- errors


def run_errors(split: devset.Split, limit: int | None, backend: str) -> list[dict[str, Any]]:
    """Where ``best``'s error lies, per subset: its MAE split into subject taken for background
    (false negative) and background taken for subject (false positive), the part of the
    latter in pieces of the mask that do not touch the true subject, and the error of the
    photos whose true subject fills most of the frame (≥ 60 %: a table, a bed, a wall). The
    truth is binarised at 128 as pysodmetrics does (whose MAE also stretches each mask to
    0..1 first, so its figures differ slightly where a mask has no sure pixel)."""
    import cv2

    outputs = Outputs("isnet_fp16", backend, devset.CACHE)
    per: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for pair in devset.pairs(split, limit=limit):
        pixels, truth = pair.load()
        mask = soft(outputs.combined(pair.name, pixels, BEST), *truth.shape)
        known = (truth != 128) if pair.subset == "grabcut" else np.ones(truth.shape, bool)
        g = (truth >= 128).astype(np.float32)  # binarised at 128, as pysodmetrics does
        fn = float(((1 - mask) * g * known).mean())
        fp = float((mask * (1 - g) * known).mean())
        n, labels = cv2.connectedComponents((mask > 0.5).astype(np.uint8), connectivity=8)
        touches = np.bincount(labels.ravel(), weights=g.ravel(), minlength=n) > 0
        apart = float(((labels > 0) & ~touches[labels] & known).mean() if n > 1 else 0.0)
        scene = float(g.mean() >= 0.6)
        for key in ("all", pair.subset):
            per[key].append((fn + fp, fn, fp, apart, scene, scene * (fn + fp)))
    total = sum(r[0] for r in per["all"])
    rows = []
    for subset, rs in sorted(per.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        a = np.array(rs)
        rows.append({"subset": subset, "n": len(rs), "mae": float(a[:, 0].mean()),
                     "missed": float(a[:, 1].mean()), "extra": float(a[:, 2].mean()),
                     "extra_apart": float(a[:, 3].mean()), "scene_photos": int(a[:, 4].sum()),
                     "scene_error_share": float(a[:, 5].sum() / max(a[:, 0].sum(), 1e-12)),
                     "share_of_all_error": float(a[:, 0].sum() / max(total, 1e-12))})  # fmt: skip
    return rows


def print_errors(rows: list[dict[str, Any]], split: str) -> None:
    print(json.dumps({"probe": "errors", "split": split, "rows": rows}, indent=1))
    print(
        "\n| subset | n | MAE of best | subject missed | background taken | … in pieces apart "
        f"| photos with subject ≥ 60 % | their share of the error | share of all error |\n|{'---|' * 9}"
    )
    for r in rows:
        scores = [f"{r[k]:.4f}" for k in ("mae", "missed", "extra", "extra_apart")]
        shares = [f"{100 * r[k]:.0f} %" for k in ("scene_error_share", "share_of_all_error")]
        cells = [r["subset"], str(r["n"]), *scores, str(r["scene_photos"]), *shares]
        print("| " + " | ".join(cells) + " |")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], "all")].append(r)
        groups[(r["method"], r["subset"])].append(r)
    order = list(dict.fromkeys(r["method"] for r in rows))
    out = []
    for (method, subset), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][1] != "all", kv[0][1], order.index(kv[0][0]))
    ):
        out.append({"method": method, "subset": subset, "n": len(rs),
                    **{m: float(np.mean([r[m] for r in rs])) for m in ("mae", "sm", "iou")}})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", choices=PROBES, required=True)
    ap.add_argument("--split", choices=("tune", "report", "all"), default="tune")
    ap.add_argument("--limit", type=devset.limit_arg, default=None, help="at most N photos per subset")
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    if args.probe == "errors":
        print_errors(run_errors(args.split, args.limit, args.backend), args.split)
        return
    if args.probe == "learned":
        rows = run_learned(args.split, args.limit, args.backend)
    else:
        rows = run_probe(args.probe, args.split, args.limit, args.backend)
    summary = summarise(rows)
    print(json.dumps({"probe": args.probe, "split": args.split, "summary": summary}, indent=1))
    base = {s["subset"]: s for s in summary if s["method"] == "best"}
    print(f"\n| method | subset | n | MAE | S | IoU | MAE vs best | S vs best |\n|{'---|' * 8}")
    for s in summary:
        b = base.get(s["subset"])
        rel = f"{100 * (s['mae'] / b['mae'] - 1):+.1f} %" if b and b["mae"] else "–"
        ds = f"{s['sm'] - b['sm']:+.4f}" if b else "–"
        scores = [f"{s[m]:.4f}" for m in ("mae", "sm", "iou")]
        cells = [s["method"], s["subset"], str(s["n"]), *scores, rel, ds]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
