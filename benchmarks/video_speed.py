#!/usr/bin/env python3
"""Video speed: frames per second of ``remove_video`` at 480p and 1080p, decode/infer/encode
overlapped against the same work done serially, and the per-frame cost against the photo
path, in one process, side by side.

    python benchmarks/video_speed.py [--frames 16] [--rounds 3] [--sizes 480p,1080p]
                                     [--output webm] [--photo-frames 4] [--json F]

Clips are made from a real photo (``examples/astronaut.jpg``, upscaled to cover the frame):
a camera window panning over it by a known number of pixels per frame (0.4 % of the width),
H.264 (libx264, CRF 18) at 24 fps in MP4, ``--frames`` frames. One loaded model
(``Remover`` as ``cleancut`` makes it: default model, device and backend) does all the work.
Each round measures, for each size:

* **overlapped**: ``remove_video(clip, out.webm)`` (what ``cleancut clip.mp4 -o out.webm``
  runs: decode and encode each on their own thread, inference on the caller's);
* **serial**: the same stages one after another: decode every frame, cut every frame
  (``cut_frames``, smoothing on), encode every cut-out (``VideoWriter``), each timed;
* **photo**: ``--photo-frames`` frames of the clip saved as PNG files and cut the photo way
  (``Remover.remove(path)`` then ``Cutout.save(out.png)``: what ``cleancut frame.png -o
  out.png`` does once its model is loaded).

Then, once, the VP9 encoder setting the writer uses (``cpu-used`` 4) against libvpx's default
(``cpu-used`` 0 … its slowest, highest-effort end of ``deadline=good``) on the cut-outs of the
largest clip: encode milliseconds per frame, bytes, and PSNR of the decoded RGBA against the
cut-out (colour and alpha), so the speed it buys and what it costs are on record.

Stated figures: frames per second of the overlapped path (median over rounds), and two
**medians of per-round ratios**: serial seconds ÷ overlapped seconds (the gain of the
overlap), and overlapped seconds per frame ÷ photo seconds per frame (what one frame of a
clip costs against the same frame as a photo). Ratios are taken within a round, where the
variants ran next to each other under the same load; the machine may be shared. The
variants take turns in a rotating order over the rounds. Prints JSON, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "astronaut.jpg"
SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
RATE = 24


def make_clip(path: Path, size: tuple[int, int], frames: int) -> None:
    """The photo upscaled to cover ``size`` plus the pan, a window moving right (and a
    little down) by a whole number of pixels per frame, encoded as H.264."""
    import av
    import cv2
    from PIL import Image

    w, h = size
    dx = max(1, round(w * 0.004))
    dy = max(1, dx // 3)
    need_w, need_h = w + dx * frames, h + dy * frames
    with Image.open(PHOTO) as im:
        photo = np.asarray(im.convert("RGB"))
    scale = max(need_w / photo.shape[1], need_h / photo.shape[0])
    big = cv2.resize(
        photo, (round(photo.shape[1] * scale) + 1, round(photo.shape[0] * scale) + 1), cv2.INTER_CUBIC
    )
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=RATE)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast"}
        for i in range(frames):
            window = np.ascontiguousarray(big[i * dy : i * dy + h, i * dx : i * dx + w])
            for p in s.encode(av.VideoFrame.from_ndarray(window, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def overlapped(remover: object, clip: Path, out: Path) -> float:
    from cleancut.video import remove_video

    return timed(lambda: remove_video(clip, out, remover=remover, overwrite=True))  # type: ignore[arg-type]


def serial(remover: object, clip: Path, out: Path) -> dict[str, float]:
    from cleancut.video import cut_frames, iter_frames, probe
    from cleancut.video.encode import VideoWriter, target_for

    t0 = time.perf_counter()
    info = probe(clip)
    frames = list(iter_frames(clip))
    t1 = time.perf_counter()
    cuts = list(cut_frames(frames, remover=remover))  # type: ignore[arg-type]
    t2 = time.perf_counter()
    writer = VideoWriter(target_for(out), info, audio_from=clip, overwrite=True)
    for f, cut in zip(frames, cuts, strict=True):
        writer.write(cut.pixels, f.pts)
    writer.close()
    t3 = time.perf_counter()
    return {"decode": t1 - t0, "cut": t2 - t1, "encode": t3 - t2, "total": t3 - t0}


def photo_path(remover: object, pngs: list[Path], out_dir: Path) -> float:
    def run() -> None:
        for i, png in enumerate(pngs):
            remover.remove(png).save(out_dir / f"photo{i}.png", overwrite=True)  # type: ignore[attr-defined]

    return timed(run) / len(pngs)


def save_pngs(clip: Path, count: int, folder: Path) -> list[Path]:
    from PIL import Image

    from cleancut.video import iter_frames

    out = []
    for f in iter_frames(clip):
        if f.index >= count:
            break
        path = folder / f"frame{f.index}.png"
        Image.fromarray(f.pixels).save(path)
        out.append(path)
    return out


def vp9_settings(cuts: list[np.ndarray], rate: int = RATE) -> dict[str, dict[str, float]]:
    """Encode ``cuts`` (RGBA) as VP9 with alpha at libvpx's default speed and at the
    writer's ``cpu-used`` 4: ms per frame, KiB, PSNR of colour (RGB) and alpha."""
    import io

    import av

    h, w = cuts[0].shape[:2]
    out: dict[str, dict[str, float]] = {}
    for label, extra in (("default", {}), ("cpu-used 4", {"cpu-used": "4"})):
        buf = io.BytesIO()
        t0 = time.perf_counter()
        with av.open(buf, "w", format="webm") as c:
            s = c.add_stream("libvpx-vp9", rate=rate)
            s.width, s.height, s.pix_fmt = w, h, "yuva420p"
            s.options = {
                "crf": "30",
                "b": "0",
                "row-mt": "1",
                "deadline": "good",
                "auto-alt-ref": "0",
                **extra,
            }
            for px in cuts:
                for p in s.encode(av.VideoFrame.from_ndarray(px, format="rgba")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        seconds = time.perf_counter() - t0
        data = buf.getvalue()
        buf.seek(0)
        decoded = []
        with av.open(buf) as c:
            ctx = av.codec.CodecContext.create("libvpx-vp9", "r")
            for p in c.demux(c.streams.video[0]):
                if p.size:
                    decoded.extend(ctx.decode(p))
            decoded.extend(ctx.decode(None))
        sq = np.mean(
            [
                ((f.to_ndarray(format="rgba").astype(np.float64) - px) ** 2).mean(axis=(0, 1))
                for f, px in zip(decoded, cuts, strict=True)
            ],
            axis=0,
        )
        psnr = 10 * np.log10(255.0**2 / np.maximum(sq, 1e-12))
        out[label] = {
            "ms_per_frame": seconds / len(cuts) * 1000,
            "kib": len(data) / 1024,
            "psnr_rgb": float(np.mean(psnr[:3])),
            "psnr_alpha": float(psnr[3]),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="480p,1080p")
    ap.add_argument("--output", default="webm", choices=("webm", "mov", "mp4"))
    ap.add_argument("--photo-frames", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from cleancut import EngineOptions, Remover

    remover = Remover.from_options(EngineOptions())
    remover.load()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    rounds: dict[str, list[dict[str, float]]] = {s: [] for s in sizes}
    with tempfile.TemporaryDirectory(prefix="cleancut-video-speed-") as tmp:
        root = Path(tmp)
        clips = {}
        pngs = {}
        for name in sizes:
            clips[name] = root / f"{name}.mp4"
            make_clip(clips[name], SIZES[name], args.frames)
            pngs[name] = save_pngs(clips[name], args.photo_frames, root)
            for p in pngs[name]:
                p.rename(p.with_name(f"{name}-{p.name}"))
            pngs[name] = [p.with_name(f"{name}-{p.name}") for p in pngs[name]]
        remover.remove(pngs[sizes[0]][0])  # warm-up: first-run allocations out of the timings
        out = root / f"out.{args.output}"
        for r in range(args.rounds):
            for name in sizes:
                clip = clips[name]
                variants: list[tuple[str, Callable[[], object]]] = [
                    ("overlapped", lambda clip=clip: overlapped(remover, clip, out)),
                    ("serial", lambda clip=clip: serial(remover, clip, out)),
                    ("photo", lambda name=name: photo_path(remover, pngs[name], root)),
                ]
                k = r % len(variants)
                got: dict[str, object] = {}
                for label, fn in variants[k:] + variants[:k]:
                    got[label] = fn()
                ser = got["serial"]
                assert isinstance(ser, dict)
                row = {
                    "overlapped_s": float(got["overlapped"]),  # type: ignore[arg-type]
                    "serial_s": ser["total"],
                    "decode_s": ser["decode"],
                    "cut_s": ser["cut"],
                    "encode_s": ser["encode"],
                    "photo_s_per_frame": float(got["photo"]),  # type: ignore[arg-type]
                }
                row["overlap_gain"] = row["serial_s"] / row["overlapped_s"]
                row["frame_vs_photo"] = row["overlapped_s"] / args.frames / row["photo_s_per_frame"]
                rounds[name].append(row)
                print(
                    f"round {r + 1} {name}: {args.frames / row['overlapped_s']:.2f} fps overlapped, "
                    f"gain {row['overlap_gain']:.2f}, frame/photo {row['frame_vs_photo']:.2f}",
                    file=sys.stderr,
                )

        from cleancut.video import cut_frames, iter_frames

        largest = max(sizes, key=lambda n: SIZES[n][0])
        cuts = [c.pixels for c in cut_frames(iter_frames(clips[largest]), remover=remover)]
        vp9 = vp9_settings(cuts)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds[name])

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "remover": {k: str(v) for k, v in remover.describe().items()},
        "frames": args.frames,
        "output": args.output,
        "rounds": args.rounds,
        "vp9_on_" + largest: vp9,
        "sizes": {
            name: {
                "width_height": SIZES[name],
                "fps_overlapped": args.frames / med(name, "overlapped_s"),
                "fps_serial": args.frames / med(name, "serial_s"),
                "per_frame_s": {
                    "decode": med(name, "decode_s") / args.frames,
                    "cut": med(name, "cut_s") / args.frames,
                    "encode": med(name, "encode_s") / args.frames,
                    "photo": med(name, "photo_s_per_frame"),
                },
                "overlap_gain_median_of_ratios": med(name, "overlap_gain"),
                "frame_vs_photo_median_of_ratios": med(name, "frame_vs_photo"),
                "rounds": rounds[name],
            }
            for name in sizes
        },
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print()
    backend = result["remover"].get("backend", "?")  # type: ignore[union-attr]
    print(f"{args.frames} frames, -> .{args.output}, {args.rounds} rounds, {backend}")
    head = (
        f"{'size':>6} {'fps':>6} {'fps serial':>10} {'overlap gain':>12} "
        f"{'decode ms':>9} {'cut ms':>7} {'encode ms':>9} {'photo ms':>8} {'frame/photo':>11}"
    )
    print(head)
    for name, s in result["sizes"].items():  # type: ignore[union-attr]
        pf = s["per_frame_s"]
        print(
            f"{name:>6} {s['fps_overlapped']:>6.2f} {s['fps_serial']:>10.2f} "
            f"{s['overlap_gain_median_of_ratios']:>12.2f} {pf['decode'] * 1000:>9.1f} "
            f"{pf['cut'] * 1000:>7.0f} {pf['encode'] * 1000:>9.1f} {pf['photo'] * 1000:>8.0f} "
            f"{s['frame_vs_photo_median_of_ratios']:>11.2f}"
        )
    print()
    print(f"VP9 with alpha on the {largest} cut-outs (CRF 30):")
    print(f"{'setting':>12} {'ms/frame':>8} {'KiB':>6} {'PSNR rgb':>8} {'alpha':>6}")
    for label, v in vp9.items():
        print(
            f"{label:>12} {v['ms_per_frame']:>8.0f} {v['kib']:>6.0f} "
            f"{v['psnr_rgb']:>8.2f} {v['psnr_alpha']:>6.2f}"
        )


if __name__ == "__main__":
    main()
