#!/usr/bin/env python3
"""Mask and edge-colour quality of every model × edge option on composites with a known alpha.

    python benchmarks/quality.py [--models isnet,isnet_fp16,isnet_quint8] [--options all]
                                 [--limit N] [--json out.json]

Ground truth: benchmarks/quality_data.py (rendered hair and fur subjects and Fluent UI emoji
over scikit-image's photos, 1600×1200; subsets ``hair``, ``fur``, ``icon``). No package in
the registries we can reach ships real photos with human-made alpha mattes, so none is used.

Per (model, option), per subset and overall:

* the salient-object metrics of ``pysodmetrics`` on the predicted mask against the true
  alpha: MAE, S-measure, mean E-measure, weighted F, max F (pysodmetrics binarises the
  ground truth at 128, the salient-object convention, so a soft-but-right edge still costs
  MAE); plus IoU of both at 0.5;
* ``edge_err``: the cut-out recomposited on a new photo against the true recomposite
  (``α·F + (1 − α)·N``), mean absolute error (0..255, all channels) inside the edge band —
  the pixels where the true alpha is strictly between 0 and 255, dilated by 2 px. This is
  what colour decontamination is for: a halo of the old background shows up here.

The network runs once per (model, composite) (outputs cached in ``.cache/quality/y/``);
every option reuses that output. Mask metrics are computed once per distinct mask (the
decontamination options share the plain mask). Prints JSON, then a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_data
from cleancut.edges import EdgeOptions, foreground_colors, make_mask

MODELS = ("isnet", "isnet_fp16", "isnet_quint8")
OPTIONS: dict[str, EdgeOptions] = {
    "bilinear": EdgeOptions(refine="bilinear", decontaminate="none"),
    "guided": EdgeOptions(refine="guided", decontaminate="none"),
    "blur_fusion": EdgeOptions(refine="bilinear", decontaminate="blur_fusion"),
    "multilevel": EdgeOptions(refine="bilinear", decontaminate="multilevel"),
    "guided+blur_fusion": EdgeOptions(refine="guided", decontaminate="blur_fusion"),
    "threshold128": EdgeOptions(refine="bilinear", decontaminate="none", threshold=128),
    "feather1": EdgeOptions(refine="bilinear", decontaminate="none", feather=1.0),
    "islands+holes": EdgeOptions(refine="bilinear", decontaminate="none", min_island=5e-4, min_hole=5e-4),
}
METRICS = ("mae", "sm", "em", "wfm", "maxf", "iou", "edge_err")
BAND_DILATE_PX = 2


def edge_band(alpha: np.ndarray) -> np.ndarray:
    """Where the true alpha is strictly between 0 and 255, dilated by 2 px."""
    import cv2

    soft = ((alpha > 0) & (alpha < 255)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND_DILATE_PX + 1,) * 2)
    return cv2.dilate(soft, kernel).astype(bool)


def edge_color_error(
    fg_pred: np.ndarray, mask: np.ndarray, comp: quality_data.Composite, band: np.ndarray | None = None
) -> float:
    """Mean |predicted recomposite − true recomposite| (0..255) in the edge band."""
    band = edge_band(comp.alpha) if band is None else band
    pred = quality_data.recomposite(fg_pred[:, :, :3], mask, comp.new_bg)
    true = comp.true_recomposite()
    return float(np.abs(pred - true)[band].mean())


def mask_scores(mask: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    """pysodmetrics' MAE, S-measure, mean E-measure, weighted F and max F, plus IoU at 0.5."""
    try:
        import py_sod_metrics as sod
    except ImportError:
        sys.exit(
            "benchmarks/quality.py needs pysodmetrics: pip install -e '.[bench]' && "
            "pip install --no-deps pysodmetrics (its pins on numpy/OpenCV are stale)"
        )

    out: dict[str, float] = {}
    mae, sm, em, wfm, fm = sod.MAE(), sod.Smeasure(), sod.Emeasure(), sod.WeightedFmeasure(), sod.Fmeasure()
    for metric in (mae, sm, em, wfm, fm):
        metric.step(pred=mask, gt=alpha)
    out["mae"] = float(mae.get_results()["mae"])
    out["sm"] = float(sm.get_results()["sm"])
    out["em"] = float(np.mean(em.get_results()["em"]["curve"]))
    out["wfm"] = float(wfm.get_results()["wfm"])
    out["maxf"] = float(np.max(fm.get_results()["fm"]["curve"]))
    p, g = mask >= 128, alpha >= 128
    union = int((p | g).sum())
    out["iou"] = float((p & g).sum() / union) if union else 1.0
    return out


def network_output(remover: Any, comp: quality_data.Composite) -> np.ndarray:
    from cleancut import pipeline

    path = quality_data.CACHE / "y" / remover.spec.name / f"{comp.name}.npy"
    if path.exists():
        return np.load(path)
    x = pipeline.preprocess(comp.image, 1024, exact=remover.exact_resize)
    y: np.ndarray = remover.infer(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, y)
    return y


def _mask_key(o: EdgeOptions) -> tuple[object, ...]:
    return (o.refine, o.threshold, o.feather, o.min_island, o.min_hole)


def evaluate(
    models: list[str], options: dict[str, EdgeOptions], comps: list[quality_data.Composite], backend: str
) -> dict[str, Any]:
    from cleancut import Remover

    per_image: list[dict[str, Any]] = []
    timing: dict[str, list[float]] = defaultdict(list)
    for model in models:
        remover = Remover(model, backend=backend).load()
        for comp in comps:
            y = network_output(remover, comp)
            band = edge_band(comp.alpha)
            cached: dict[tuple[object, ...], tuple[np.ndarray, dict[str, float]]] = {}
            for name, opts in options.items():
                t0 = time.perf_counter()
                key = _mask_key(opts)
                if key not in cached:
                    mask = make_mask(y, comp.image, opts, exact=remover.exact_resize)
                    cached[key] = (mask, mask_scores(mask, comp.alpha))
                mask, scores = cached[key]
                fg = foreground_colors(comp.image, mask, opts)
                row = {"model": model, "option": name, "image": comp.name, "subset": comp.subset, **scores,
                       "edge_err": edge_color_error(fg, mask, comp, band)}  # fmt: skip
                per_image.append(row)
                timing[name].append(time.perf_counter() - t0)
            print(f"# {model} {comp.name} done", file=sys.stderr)
    return {"rows": per_image, "summary": summarise(per_image)}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of each metric per (model, option, subset) and per (model, option) overall."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["option"], r["subset"])].append(r)
        groups[(r["model"], r["option"], "all")].append(r)
    out = []
    for (model, option, subset), rs in groups.items():
        out.append({"model": model, "option": option, "subset": subset, "n": len(rs),
                    **{m: float(np.mean([r[m] for r in rs])) for m in METRICS}})  # fmt: skip
    return out


def table(summary: list[dict[str, Any]], subsets: bool = True) -> str:
    head = f"| model | option | subset | n | {' | '.join(METRICS)} |"
    lines = [head, "|" + "---|" * (4 + len(METRICS))]
    for s in summary:
        if not subsets and s["subset"] != "all":
            continue
        vals = " | ".join(f"{s[m]:.4f}" if m != "edge_err" else f"{s[m]:.2f}" for m in METRICS)
        lines.append(f"| {s['model']} | {s['option']} | {s['subset']} | {s['n']} | {vals} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--options", default="all", help=f"comma list of: {', '.join(OPTIONS)}")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N composites")
    ap.add_argument("--backend", default="onnxruntime", help="onnxruntime (default) or openvino / auto")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    names = list(OPTIONS) if args.options == "all" else args.options.split(",")
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        ap.error(f"unknown options {unknown}; choose from {list(OPTIONS)}")
    comps = quality_data.build(args.limit)
    result = evaluate(args.models.split(","), {n: OPTIONS[n] for n in names}, comps, args.backend)
    result["composites"] = {c.name: c.sources for c in comps}
    text = json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    order = list(OPTIONS)
    result["summary"].sort(
        key=lambda s: (s["model"], s["subset"] != "all", s["subset"], order.index(s["option"]))
    )
    print(table(result["summary"]))


if __name__ == "__main__":
    main()
