#!/usr/bin/env python3
"""Per-stage times and peak memory of one cut-out, on real photos, clean and with sensor noise.

    python benchmarks/stages.py [--model isnet_fp16] [--repeat 3] [--cases small,photo,12mp,...]
                                [--json out.json]

Each photo runs in a fresh process (so peak RSS is that photo's alone): one warm-up pass,
then ``--repeat`` timed passes; the median of each stage is reported. Stages: decode
(file → RGB array), preprocess, inference, postprocess (mask at full size: the reference's
bilinear upsample by default), compose (RGBA: blur-fusion decontamination by default),
encode (PNG at cleancut's default level) and write. Prints JSON, then a table with the PNG's size.

Cases (``--cases``; each a JPEG q92 written into a temporary folder unless noted):

* ``small``: ``examples/astronaut.jpg`` as it is (0.26 MP);
* ``photo``: the real photo below at its own resolution, with its own sensor noise;
* ``12mp`` / ``24mp``: that photo centre-cropped to 4:3 and upscaled (Lanczos) to
  4000×3000 / 6000×4000: real content at camera resolution, but an upscale is much smoother
  than a camera's output (no noise at the pixel scale), so PNG sizes and encode times are
  the low end;
* ``12mp-noisy`` / ``24mp-noisy``: the same plus simulated raw sensor noise
  (:func:`sensor_noise`): the upscale taken to linear light, sampled through an RGGB Bayer
  mosaic, Poisson shot noise for a full well of ``--full-well`` electrons (2000 e⁻ at the
  white point) plus Gaussian read noise of ``--read-noise`` electrons (3 e⁻), demosaiced
  (OpenCV's edge-aware) and taken back to sRGB, no denoising: roughly an unprocessed
  small-sensor photo at low to moderate ISO: on flat grey σ = 3.4, 2.3 and 2.1 levels of
  255 at levels 30, 118 and 200 (the shadows the noisiest relative to the signal). A
  phone's denoiser would remove part of it; a raw-developed camera photo keeps it.

The real photo: the dev set's largest photo (``.cache/devset/images``, built by the tool
``benchmarks/devset.py`` names; research-use data, never committed) when present — today
``comp1k_hr__sieve-641426_1920_1.png``, 1920×1441, a Composition-1k image (a foreground
photo composited on a background photo, stored as PNG; both were downscaled from camera
resolution, which weakens their own noise) — else ``examples/coffee.jpg`` (400×300, so its
upscales are smoother still). ``--photo PATH`` picks another.

Figures behind the edge stage's settings (they stood in ``cleancut/refine.py`` and
``cleancut/matting.py`` before; ``benchmarks/quality.py``, fp16, 14 composites of
1600×1200; MAE / IoU / edge-band colour error):

* guided fit (``refine.GUIDED_FIT_SIZE``, ``GUIDED_RADIUS``; ``refine="guided"``, no longer
  the default): bilinear (no guide) .1585 / .631 / 23.26; fit at 1024² r 2 .1565 / .642 /
  20.02; 512² r 1 .1548 / .645 / 19.36; 512² r 2 .1547 / .647 / 19.03; 512² r 3 .1548 /
  .647 / 18.85; 256² r 1 .1550 / .647 / 19.10; **256² r 2** .1552 / .648 / 18.74 (with
  blur-fusion's wide pass at side 1536; 18.80 at the current 768). The wider window helps
  most where the soft region is wide (fur 23.67 → 20.46, hair 21.00 → 19.30) and costs a
  little on hard-edged emoji (16.93 → 17.23); the fit at 256² is 16× less work than at 1024²
  (the coefficient solve 129 → 3.3 ms of one core; the guided stage of a 1.5 MP photo
  198 → 54 ms).
* blur-fusion's wide pass (``matting._WIDE_SIDE``): edge-band colour error 18.74 at side
  1536 (k = 2), 18.80 at 768 (k = 3), 18.83 at 512 (k = 4), mask metrics unchanged; 768
  halves the decontamination's CPU on a 1.5 MP photo (210 → 106 ms of one core); 12 MP
  photos get k = 6. The tiled r = 6 pass on two threads: 12 MP 0.48 → 0.28 s under load;
  batches of 8 tiles ran 2.6× faster per pixel than batches of 128.
* the soft band (``matting.SOFT_BAND``, α 4..251): on the 12 MP upscale of
  ``examples/coffee.jpg`` 16.7 % of pixels are soft, 6.9 % inside the band; edge-band colour
  error 20.00 → 20.02 (guided + blur-fusion) and 21.66 → 21.67 (blur-fusion alone).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STAGES = ("decode", "preprocess", "inference", "postprocess", "compose", "encode", "write")


def real_photo() -> Path:
    """The dev set's largest photo if the dev set is built, else ``examples/coffee.jpg``."""
    folder = REPO / ".cache" / "devset" / "images"
    if folder.is_dir():
        from PIL import Image

        best: tuple[int, str] | None = None
        for path in folder.iterdir():
            with Image.open(path) as im:
                area = im.size[0] * im.size[1]
            if best is None or (area, path.name) > best:
                best = (area, path.name)
        if best is not None:
            return folder / best[1]
    return REPO / "examples" / "coffee.jpg"


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055).astype(np.float32)


def sensor_noise(
    rgb: np.ndarray, full_well: float = 2000.0, read_noise: float = 3.0, seed: int = 0
) -> np.ndarray:
    """``rgb`` (uint8 sRGB) as a raw sensor would have recorded it: Poisson-Gaussian noise.

    Linear light through an RGGB Bayer mosaic; per photosite, electrons = Poisson(linear ×
    ``full_well``) + Normal(0, ``read_noise``); then demosaiced (OpenCV edge-aware, 16-bit)
    and taken back to sRGB uint8. Shot noise grows with the signal (σ = √electrons), read
    noise dominates the shadows; demosaicing correlates neighbouring pixels, as in a camera.
    """
    import cv2

    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    lin = srgb_to_linear(rgb[:h, :w].astype(np.float32) / 255.0)
    mosaic = np.empty((h, w), np.float32)
    mosaic[0::2, 0::2] = lin[0::2, 0::2, 0]  # R
    mosaic[0::2, 1::2] = lin[0::2, 1::2, 1]  # G
    mosaic[1::2, 0::2] = lin[1::2, 0::2, 1]  # G
    mosaic[1::2, 1::2] = lin[1::2, 1::2, 2]  # B
    rng = np.random.default_rng(seed)
    electrons = rng.poisson(mosaic * full_well).astype(np.float32)
    electrons += rng.normal(0.0, read_noise, mosaic.shape).astype(np.float32)
    raw = np.clip(electrons / full_well * 65535.0, 0, 65535).astype(np.uint16)
    # OpenCV names Bayer patterns by the second row: an RGGB mosaic is its "BayerBG"
    demosaiced = cv2.demosaicing(raw, cv2.COLOR_BayerBG2RGB_EA).astype(np.float32) / 65535.0
    return np.round(linear_to_srgb(demosaiced) * 255.0).astype(np.uint8)


#: the cases ``--cases`` names: (width, height, sensor noise); None: the photo's own size
CASES: dict[str, tuple[int, int, bool] | None] = {
    "small": None,
    "photo": None,
    "12mp": (4000, 3000, False),
    "12mp-noisy": (4000, 3000, True),
    "24mp": (6000, 4000, False),
    "24mp-noisy": (6000, 4000, True),
}


def make_case(
    folder: Path, case: str, source: Path, full_well: float = 2000.0, read_noise: float = 3.0
) -> Path:
    """The JPEG (q92) of ``case`` made from the real photo ``source``, in ``folder``."""
    from PIL import Image, ImageOps

    if case == "small":
        return REPO / "examples" / "astronaut.jpg"
    target = folder / f"{source.stem[:24]}_{case}.jpg"
    if target.exists():
        return target
    with Image.open(source) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    spec = CASES[case]
    if spec is not None:
        width, height, noisy = spec
        rgb = ImageOps.fit(rgb, (width, height), Image.Resampling.LANCZOS)
        if noisy:
            rgb = Image.fromarray(sensor_noise(np.asarray(rgb), full_well, read_noise))
    rgb.save(target, quality=92)
    return target


def worker(path: Path, model: str, backend: str, repeat: int, out_dir: Path) -> dict[str, object]:
    from cleancut import Remover
    from cleancut import io as codecs
    from cleancut.remover import DEFAULT_PNG_LEVEL, make_cutout

    remover = Remover(model, backend=backend).load()
    rows: list[dict[str, float]] = []
    size = (0, 0)
    out_bytes = 0
    for i in range(repeat + 1):
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        decoded = codecs.decode(path, max_pixels=remover.settings.max_pixels)
        t["decode"] = time.perf_counter() - t0
        mask = remover.predict_mask(decoded.pixels, timings=t)
        t1 = time.perf_counter()
        # the default compose: decontaminated edge colours (EdgeOptions()), then the alpha
        rgba = make_cutout(decoded.pixels, mask, "foreground").pixels
        t2 = time.perf_counter()
        data = codecs.encode(
            rgba, "png", icc_profile=decoded.icc_profile, png_compress_level=DEFAULT_PNG_LEVEL
        )
        t3 = time.perf_counter()
        codecs.write_atomic(out_dir / f"out{i}.png", data, overwrite=True)
        t4 = time.perf_counter()
        t.update(compose=t2 - t1, encode=t3 - t2, write=t4 - t3)
        t["total"] = t4 - t0
        size = (decoded.width, decoded.height)
        out_bytes = len(data)
        if i > 0:  # the first pass warms caches and the session
            rows.append(t)
    med = {k: statistics.median(r[k] for r in rows) for k in (*STAGES, "total")}
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "photo": path.name,
        "width": size[0],
        "height": size[1],
        "megapixels": round(size[0] * size[1] / 1e6, 2),
        "model": model,
        "backend": remover.session.backend,
        "provider": remover.session.provider,
        "threads": remover.session.threads,
        "repeat": repeat,
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "png_bytes": out_bytes,
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="isnet_fp16")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--cases",
        default="small,photo,12mp,12mp-noisy,24mp",
        help=f"comma-separated, from {','.join(CASES)} (default: small,photo,12mp,12mp-noisy,24mp)",
    )
    ap.add_argument("--photo", type=Path, help="the real photo the cases are made from (default: see above)")
    ap.add_argument("--full-well", type=float, default=2000.0, help="electrons at white (default 2000)")
    ap.add_argument("--read-noise", type=float, default=3.0, help="read noise, electrons (default 3)")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(worker(args.worker, args.model, args.backend, args.repeat, Path(tmp))))
        return

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        ap.error(f"--cases: unknown {unknown}; choose from {','.join(CASES)}")
    source = args.photo or real_photo()
    results = []
    with tempfile.TemporaryDirectory(prefix="cleancut-bench-") as tmp:
        for case in cases:
            photo = make_case(Path(tmp), case, source, args.full_well, args.read_noise)
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(photo),
                    "--model",
                    args.model,
                    "--backend",
                    args.backend,
                    "--repeat",
                    str(args.repeat),
                ],
                capture_output=True,
                text=True,
                check=True,
                env=os.environ.copy(),
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["case"] = case
            result["jpeg_bytes"] = photo.stat().st_size
            results.append(result)
    report = {
        "benchmark": "stages",
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "source_photo": source.name,
        "sensor_noise": {
            "model": "Poisson shot + Gaussian read noise on linear RGGB Bayer samples, demosaiced",
            "full_well_e": args.full_well,
            "read_noise_e": args.read_noise,
        },
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)

    head = (
        f"{'case':<12}{'MP':>6}"
        + "".join(f"{s:>12}" for s in (*STAGES, "total"))
        + f"{'PNG MB':>8}{'peak RSS':>11}"
    )
    print(
        f"\nreal photo: {source.name}; noisy = {args.full_well:g} e- full well, {args.read_noise:g} e- read"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        med = r["median_s"]
        assert isinstance(med, dict)
        print(
            f"{r['case']:<12}{r['megapixels']:>6}"
            + "".join(f"{med[s]:>11.3f}s" for s in (*STAGES, "total"))
            + f"{r['png_bytes'] / 1e6:>8.2f}{r['peak_rss_mib']:>8.0f} MiB"
        )


if __name__ == "__main__":
    main()
