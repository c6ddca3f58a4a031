"""Composites with a known alpha for benchmarks/quality.py (and a small slice for the tests).

Each composite is ``I = α·F + (1 − α)·B``: a subject with an exact alpha (``F``, ``α``) over a
real photo ``B``. The true composite on a *new* background ``N`` is ``α·F + (1 − α)·N``, so
both the predicted mask and the colours of a cut-out can be scored.

Subsets (by subject kind):

* ``hair`` — rendered: a head-like blob with long, thin, antialiased strands (0.3–1 px wide
  at the final size, so most of the edge band is semi-transparent), coloured from a real
  photo's texture. Rendered at 4× and area-downsampled: α is exact by construction.
* ``fur`` — rendered: an animal-like blob with dense short strands all round.
* ``icon`` — RGBA assets that a package ships: Microsoft's Fluent UI emoji (npm
  ``fluentui-emoji@1.3.0``, MIT; SVG rendered with CairoSVG at 900 px, then placed with a
  premultiplied area resize). Needs ``npm`` and CairoSVG; without them the subset is skipped.

Backgrounds: scikit-image's bundled photos (BSD-3-Clause / public domain, see
``skimage/data/README.txt``). Nothing is downloaded except the npm package; everything is
built deterministically (fixed seeds) into ``.cache/quality/`` and ``manifest.json`` there
records each composite's sources and licences.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "quality"
SIZE = (1200, 1600)  # H, W: above the network's 1024² so full-resolution refinement matters
EMOJI_PACKAGE = "fluentui-emoji@1.3.0"
EMOJI_NAMES = ("lion", "poodle", "hedgehog", "woman-red-hair-default", "potted-plant", "bouquet")
BACKGROUNDS = ("motorcycle_left", "rocket", "coffee", "chelsea", "astronaut", "hubble_deep_field")
LICENCES = {
    "skimage": "scikit-image bundled data, BSD-3-Clause / public domain (skimage/data/README.txt)",
    "fluentui": "Microsoft Fluent UI emoji via npm fluentui-emoji@1.3.0, MIT",
    "rendered": "rendered by benchmarks/quality_data.py (texture: examples/chelsea.jpg = skimage chelsea)",
}


@dataclass(frozen=True)
class Composite:
    name: str
    subset: str
    image: np.ndarray  # [H, W, 3] uint8: the photo given to the model
    alpha: np.ndarray  # [H, W] uint8: the exact alpha of the subject
    fg: np.ndarray  # [H, W, 3] uint8: the subject's own colour
    new_bg: np.ndarray  # [H, W, 3] uint8: the background for the recomposite test
    sources: dict[str, str]

    def true_recomposite(self) -> np.ndarray:
        return recomposite(self.fg, self.alpha, self.new_bg)


def recomposite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``α·F + (1 − α)·B`` in float32 (0..255)."""
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    out: np.ndarray = a * fg.astype(np.float32) + (1.0 - a) * bg.astype(np.float32)
    return out


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    img = np.asarray(data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _cover(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale to cover ``h×w`` (Lanczos) and centre-crop."""
    s = max(h / img.shape[0], w / img.shape[1])
    rh, rw = max(h, round(img.shape[0] * s)), max(w, round(img.shape[1] * s))
    big = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LANCZOS4)
    y0, x0 = (rh - h) // 2, (rw - w) // 2
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


def _strands(
    rng: np.random.Generator, h: int, w: int, body: list[tuple[float, float, float, float]],
    count: int, length: tuple[float, float], width: tuple[float, float], curl: float,
) -> np.ndarray:  # fmt: skip
    """α at ``h×w`` (uint8): ellipses ``(cy, cx, ry, rx)`` as the body plus ``count`` curved
    strands from the body's outline outwards, drawn antialiased at 4× and area-downsampled."""
    ss = 4
    canvas = np.zeros((h * ss, w * ss), dtype=np.uint8)
    for cy, cx, ry, rx in body:
        cv2.ellipse(canvas, (round(cx * ss), round(cy * ss)), (round(rx * ss), round(ry * ss)),
                    0, 0, 360, 255, -1, cv2.LINE_AA)  # fmt: skip
    for _ in range(count):
        cy, cx, ry, rx = body[int(rng.integers(len(body)))]
        t = rng.uniform(0, 2 * np.pi)
        y, x = cy + 0.9 * ry * np.sin(t), cx + 0.9 * rx * np.cos(t)
        heading = t + rng.normal(0, 0.4)
        n_seg = 12
        seg = rng.uniform(*length) / n_seg
        bend = rng.normal(0, curl)
        pts = [(x, y)]
        for _ in range(n_seg):
            heading += bend + rng.normal(0, curl / 2)
            x, y = x + seg * np.cos(heading), y + seg * np.sin(heading)
            pts.append((x, y))
        thick = max(1, round(rng.uniform(*width) * ss))
        poly = np.round(np.array(pts) * ss).astype(np.int32)
        cv2.polylines(canvas, [poly], False, 255, thick, cv2.LINE_AA)
    out: np.ndarray = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return out


def _textured(rng: np.random.Generator, h: int, w: int, tint: tuple[int, int, int]) -> np.ndarray:
    """Subject colour: a real photo's luminance texture (the cat's fur in the repository's
    ``examples/chelsea.jpg``, scikit-image's ``chelsea``) times a tint."""
    from PIL import Image

    with Image.open(REPO / "examples" / "chelsea.jpg") as im:
        photo = np.asarray(im.convert("RGB"))
    tex = cv2.cvtColor(_cover(photo, h, w), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    tex = np.roll(tex, (int(rng.integers(h)), int(rng.integers(w))), axis=(0, 1))
    col = (0.45 + 0.9 * tex[:, :, None]) * np.asarray(tint, np.float32)[None, None]
    return np.clip(col, 0, 255).astype(np.uint8)


def _rendered(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = SIZE
    rng = np.random.default_rng(seed)
    tints = [(92, 56, 32), (222, 190, 120), (40, 34, 30), (180, 70, 40), (235, 235, 228)]
    tint = tints[seed % len(tints)]
    cy, cx = h * rng.uniform(0.45, 0.6), w * rng.uniform(0.4, 0.6)
    if kind == "hair":
        body = [(cy, cx, h * 0.22, w * 0.13), (cy + h * 0.3, cx, h * 0.2, w * 0.2)]
        alpha = _strands(rng, h, w, body, 900, (h * 0.1, h * 0.35), (0.3, 1.0), 0.05)
    else:
        body = [(cy, cx, h * 0.2, w * 0.2), (cy - h * 0.15, cx + w * 0.12, h * 0.1, w * 0.08)]
        alpha = _strands(rng, h, w, body, 4000, (h * 0.02, h * 0.06), (0.3, 0.8), 0.15)
    return _textured(rng, h, w, tint), alpha


def _npm_package(dest: Path) -> Path:
    """``npm pack`` the emoji package into the cache (npm checks the registry's integrity)."""
    found = sorted(dest.glob("fluentui-emoji-*.tgz"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", EMOJI_PACKAGE, "--pack-destination", str(dest)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    return sorted(dest.glob("fluentui-emoji-*.tgz"))[0]


def _icons() -> Iterator[tuple[str, np.ndarray, str]]:
    """``(name, RGBA uint8, source)`` of the icon subjects."""
    # (scikit-image's RGBA logo was tried: its alpha is opaque everywhere, so no edge band)
    try:
        import cairosvg

        tgz = _npm_package(CACHE / "npm")
    except (ImportError, OSError, subprocess.SubprocessError) as exc:
        print(f"# icon subset: Fluent UI emoji skipped ({exc}); install npm and cairosvg")
        return
    with tarfile.open(tgz) as tar:
        for name in EMOJI_NAMES:
            member = tar.extractfile(f"package/icons/modern/{name}.svg")
            if member is None:
                continue
            png = cairosvg.svg2png(bytestring=member.read(), output_width=900)
            from PIL import Image

            yield name, np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")), LICENCES["fluentui"]


def _place(rgba: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGBA asset scaled to ~70 % of the frame height and placed off-centre."""
    h, w = SIZE
    rng = np.random.default_rng(seed)
    s = 0.7 * h / max(rgba.shape[:2])
    sh, sw = round(rgba.shape[0] * s), round(rgba.shape[1] * s)
    # premultiplied resize so no colour from transparent pixels bleeds into the edge
    a = rgba[:, :, 3:4].astype(np.float32) / 255.0
    pre = np.concatenate([rgba[:, :, :3].astype(np.float32) * a, a * 255.0], axis=2)
    small = cv2.resize(pre, (sw, sh), interpolation=cv2.INTER_AREA)
    y0 = int(rng.integers(0, h - sh + 1))
    x0 = int(rng.integers(0, w - sw + 1))
    alpha = np.zeros((h, w), np.float32)
    alpha[y0 : y0 + sh, x0 : x0 + sw] = small[:, :, 3]
    fg = np.zeros((h, w, 3), np.float32)
    fg[y0 : y0 + sh, x0 : x0 + sw] = small[:, :, :3] / np.maximum(small[:, :, 3:4] / 255.0, 1e-6)
    a8 = np.clip(alpha + 0.5, 0, 255).astype(np.uint8)
    # transparent pixels get a neutral colour (never used: α = 0 there)
    fg8 = np.where(a8[:, :, None] > 0, np.clip(fg + 0.5, 0, 255), 128).astype(np.uint8)
    return fg8, a8


Maker = Callable[[], tuple[np.ndarray, np.ndarray]]


def _subjects() -> Iterator[tuple[str, str, Maker, str]]:
    """``(subset, name, make F and α, source)`` in a fixed order (made only when not cached)."""
    for i in range(4):
        yield "hair", f"hair{i}", (lambda i=i: _rendered("hair", 100 + i)), LICENCES["rendered"]
    for i in range(4):
        yield "fur", f"fur{i}", (lambda i=i: _rendered("fur", 200 + i)), LICENCES["rendered"]
    for i, (name, rgba, source) in enumerate(_icons()):
        yield "icon", name, (lambda rgba=rgba, i=i: _place(rgba, 300 + i)), source


def build(limit: int | None = None, progress: Callable[[str], None] | None = None) -> list[Composite]:
    """All composites (the first ``limit``), cached as ``.npz`` in ``.cache/quality/``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out: list[Composite] = []
    manifest: dict[str, dict[str, str]] = {}
    h, w = SIZE
    for k, (subset, name, make, source) in enumerate(_subjects()):
        if limit is not None and k >= limit:
            break
        bg_name = BACKGROUNDS[k % len(BACKGROUNDS)]
        new_name = BACKGROUNDS[(k + 3) % len(BACKGROUNDS)]
        key = f"{subset}-{name}-{bg_name}"
        path = CACHE / f"{key}.npz"
        if path.exists():
            z = np.load(path)
            image, new_bg, fg, alpha = z["image"], z["new_bg"], z["fg"], z["alpha"]
        else:
            fg, alpha = make()
            bg = _cover(_skimage(bg_name), h, w)
            new_bg = np.ascontiguousarray(_cover(_skimage(new_name), h, w)[:, ::-1])
            image = np.clip(recomposite(fg, alpha, bg) + 0.5, 0, 255).astype(np.uint8)
            np.savez_compressed(path, image=image, new_bg=new_bg, fg=fg, alpha=alpha)
        sources = {"subject": source, "background": f"skimage.data.{bg_name}: {LICENCES['skimage']}",
                   "new_background": f"skimage.data.{new_name} (mirrored)"}  # fmt: skip
        manifest[key] = sources
        out.append(Composite(key, subset, image, alpha, fg, new_bg, sources))
        if progress:
            progress(key)
    (CACHE / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out
