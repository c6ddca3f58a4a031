#!/usr/bin/env python3
"""Per-stage times and peak memory of one cut-out: a 0.26 MP photo, 12 MP and 24 MP JPEGs.

    python benchmarks/stages.py [--model isnet_fp16] [--repeat 3] [--json out.json]

Each photo runs in a fresh process (so peak RSS is that photo's alone): one warm-up pass,
then ``--repeat`` timed passes; the median of each stage is reported. Stages: decode
(file → RGB array), preprocess, inference, postprocess (mask at full size: guided
refinement by default), compose (RGBA: blur-fusion decontamination by default), encode (PNG
at cleancut's default level) and write. Prints JSON, then a table.

The 12 and 24 MP photos are made from a bundled example (Lanczos upscale to 4000×3000 and
6000×4000, JPEG q92) in a temporary folder: a real photo's content at camera resolution.
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

REPO = Path(__file__).resolve().parents[1]
STAGES = ("decode", "preprocess", "inference", "postprocess", "compose", "encode", "write")


def make_photo(folder: Path, width: int, height: int) -> Path:
    """A real photo's content at phone/camera resolution (Lanczos upscale, JPEG q92)."""
    from PIL import Image

    target = folder / f"coffee_{width * height / 1e6:.0f}mp.jpg"
    if not target.exists():
        with Image.open(REPO / "examples" / "coffee.jpg") as im:
            im.convert("RGB").resize((width, height), Image.Resampling.LANCZOS).save(target, quality=92)
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
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(worker(args.worker, args.model, args.backend, args.repeat, Path(tmp))))
        return

    results = []
    with tempfile.TemporaryDirectory(prefix="cleancut-bench-") as tmp:
        photos = [
            REPO / "examples" / "astronaut.jpg",
            make_photo(Path(tmp), 4000, 3000),  # 12 MP, a phone photo
            make_photo(Path(tmp), 6000, 4000),  # 24 MP, a camera photo (the peak-RSS target)
        ]
        for photo in photos:
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
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {"benchmark": "stages", "cpu_count": os.cpu_count(), "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)

    head = f"{'photo':<18}{'MP':>6}" + "".join(f"{s:>12}" for s in (*STAGES, "total")) + f"{'peak RSS':>11}"
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        med = r["median_s"]
        assert isinstance(med, dict)
        print(
            f"{r['photo']:<18}{r['megapixels']:>6}"
            + "".join(f"{med[s]:>11.3f}s" for s in (*STAGES, "total"))
            + f"{r['peak_rss_mib']:>8.0f} MiB"
        )


if __name__ == "__main__":
    main()
