"""The real-photo dev set for benchmarks/quality.py: photos with human-made masks.

Built by ``../shared/tools/build_devset.py`` (public repositories fetched as mirrors; see the
README's "Quality" section) into ``.cache/devset/``: ``manifest.csv``, ``images/``, ``masks/``.
The data keeps its owners' terms (research use) and is never committed.

Subsets: ``ccp_person`` (street-fashion photos, human pixel labels), ``coco_mval`` (COCO
single objects, polygon masks), ``grabcut`` (the GrabCut benchmark; 128 marks its thin
"unknown" band, scored as neither), ``comp1k_hr`` / ``comp1k_crop`` (Adobe composites with a
soft alpha matte: the only subsets with a true soft edge, scored for edge colour too).

The split is fixed by name: ``tune`` or ``report`` from the first byte of the SHA-256 of the
pair's name (about half each, in every subset). Defaults and the best mode are chosen on
``tune``; the figures the README states are ``report``.

Network outputs are cached per (model, pass, photo) under :data:`CACHE` by
``benchmarks/quality.py`` (its ``Outputs``), so every post-processing option reuses them.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEVSET = Path(os.environ.get("CLEANCUT_DEVSET", REPO / ".cache" / "devset"))
CACHE = REPO / ".cache" / "quality" / "real"
Split = Literal["tune", "report", "all"]
SOFT_SUBSETS = ("comp1k_hr", "comp1k_crop")


@dataclass(frozen=True)
class Pair:
    name: str
    subset: str
    kind: str  # "binary" or "alpha"
    image_path: Path
    mask_path: Path

    @property
    def split(self) -> str:
        return split_of(self.name)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """The photo as cleancut decodes it (EXIF applied, RGB uint8) and its mask ``[H, W]``."""
        from PIL import Image

        from cleancut import io as codecs

        pixels = codecs.decode(self.image_path, max_pixels=100_000_000).pixels[:, :, :3]
        with Image.open(self.mask_path) as im:
            mask = np.asarray(im.convert("L"))
        if mask.shape != pixels.shape[:2]:
            raise ValueError(f"{self.name}: mask {mask.shape} does not match photo {pixels.shape[:2]}")
        return np.ascontiguousarray(pixels), mask


def split_of(name: str) -> str:
    return "tune" if hashlib.sha256(name.encode()).digest()[0] < 128 else "report"


def available() -> bool:
    return (DEVSET / "manifest.csv").is_file()


def limit_arg(text: str) -> int:
    """``--limit``'s argparse type: a whole number ≥ 1 (0 or less would score nothing)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def pairs(split: Split = "all", subsets: tuple[str, ...] = (), limit: int | None = None) -> list[Pair]:
    """The dev set's pairs in ``split`` (``limit``: at most that many per subset, by name order)."""
    if not available():
        raise SystemExit(
            f"no dev set at {DEVSET}: build it with ../shared/tools/build_devset.py "
            "(MIRROR_DIR=<mirrors> DEVSET_DIR=.cache/devset), see the README's Quality section"
        )
    out: list[Pair] = []
    per_subset: dict[str, int] = {}
    with open(DEVSET / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if subsets and row["subset"] not in subsets:
                continue
            if split != "all" and split_of(row["name"]) != split:
                continue
            n = per_subset.get(row["subset"], 0)
            if limit is not None and n >= limit:
                continue
            per_subset[row["subset"]] = n + 1
            images = list((DEVSET / "images").glob(row["name"] + ".*"))
            if len(images) != 1:
                continue
            out.append(
                Pair(
                    row["name"],
                    row["subset"],
                    row["kind"],
                    images[0],
                    DEVSET / "masks" / f"{row['name']}.png",
                )
            )
    return out
