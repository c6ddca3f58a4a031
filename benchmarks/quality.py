#!/usr/bin/env python3
"""Cut-out quality: real photos with human-made masks first, synthetic composites second.

    python benchmarks/quality.py       # report half + composites: reference, default, best, fast
    python benchmarks/quality.py --set real --split tune --methods all   # what defaults were chosen on
    python benchmarks/quality.py --set synthetic --models isnet,isnet_fp16,isnet_quint8 --methods all

**Real photos** (``--set real``): the dev set of benchmarks/devset.py (~1,350 photos with
human masks, built by ``../shared/tools/build_devset.py`` into ``.cache/devset``), split by
name into a ``tune`` half (defaults and the best mode were chosen on it) and a ``report``
half (the figures the README states). GrabCut's thin "unknown" band (128) counts as right
whatever the prediction. ``edge_err`` there is the alpha-matte subsets' mean |α − α_true|
(0..255) in the true soft band dilated by 2 px (their true foreground colour is unknown).

**Composites** (``--set synthetic``): benchmarks/quality_data.py (rendered hair and fur and
Fluent UI emoji over scikit-image's photos, 1600×1200, exact alpha and foreground), where
``edge_err`` is the colour error of the recomposite in the edge band: the cut-out
recomposited on a new photo against the true recomposite (``α·F + (1 − α)·N``), mean
absolute error (0..255, all channels) over the pixels whose true alpha is strictly between 0
and 255, dilated by 2 px. This is what colour decontamination is for.

Mask metrics are pysodmetrics' MAE, S-measure, mean E-measure, weighted F and max F (it
binarises the ground truth at 128, the salient-object convention), plus IoU of both at 0.5.

A *method* is a set of network passes (:mod:`cleancut.passes`: the quality modes, or
ablations such as ``flip``) and :class:`~cleancut.edges.EdgeOptions`; ``reference`` is the
reference pipeline (one 1024² pass, bilinear, no decontamination), ``default``/``best``/
``fast`` are what cleancut does for those modes. Each pass's network output is cached per
(model, pass, image) under ``.cache/quality/``; masks are scored once per distinct mask.
Prints JSON, then a table per set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import devset
import quality_data
from cleancut.edges import EdgeOptions, foreground_colors, make_mask
from cleancut.models.families.isnet_imgly import published_recipe
from cleancut.passes import Pass, combine, pass_input, pass_output

MODELS = ("isnet", "isnet_fp16", "isnet_quint8")
PLAIN = EdgeOptions(refine="bilinear", decontaminate="none")


@dataclass(frozen=True)
class Method:
    passes: tuple[Pass, ...]
    edges: EdgeOptions = field(default_factory=EdgeOptions)


#: IS-Net as IMG.LY publishes it: the passes and gain the quality modes use
IMGLY = published_recipe()
METHODS: dict[str, Method] = {
    # what cleancut does, and the reference it is measured against
    "reference": Method(IMGLY.passes("default"), PLAIN),
    "default": Method(IMGLY.passes("default")),
    "best": Method(IMGLY.passes("best")),
    "fast": Method(IMGLY.passes("fast")),
    # ablations
    "flip": Method((Pass(1024), Pass(1024, flip=True)), PLAIN),
    "guided": Method(IMGLY.passes("default"), EdgeOptions(refine="guided", decontaminate="none")),
    "guided+blur_fusion": Method(
        IMGLY.passes("default"), EdgeOptions(refine="guided", decontaminate="blur_fusion")
    ),
    "blur_fusion": Method(
        IMGLY.passes("default"), EdgeOptions(refine="bilinear", decontaminate="blur_fusion")
    ),
    "multilevel": Method(IMGLY.passes("default"), EdgeOptions(refine="bilinear", decontaminate="multilevel")),
    "threshold128": Method(
        IMGLY.passes("default"), EdgeOptions(refine="bilinear", decontaminate="none", threshold=128)
    ),
    "feather1": Method(
        IMGLY.passes("default"), EdgeOptions(refine="bilinear", decontaminate="none", feather=1.0)
    ),
    "best+guided": Method(IMGLY.passes("best"), EdgeOptions(refine="guided", decontaminate="blur_fusion")),
    "s768": Method((Pass(768),), PLAIN),
    "s1280": Method((Pass(1280),), PLAIN),
}
DEFAULT_METHODS = ("reference", "default", "best", "fast")
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


def alpha_band_error(mask: np.ndarray, alpha: np.ndarray) -> float:
    """Mean |mask − alpha| (0..255) in the true alpha's soft band (dilated by 2 px)."""
    band = edge_band(alpha)
    if not band.any():
        return float("nan")
    return float(np.abs(mask.astype(np.int16) - alpha.astype(np.int16))[band].mean())


def mask_scores(mask: np.ndarray, alpha: np.ndarray, *, quick: bool = False) -> dict[str, float]:
    """pysodmetrics' MAE, S-measure, mean E-measure, weighted F and max F, plus IoU at 0.5
    (``quick``: MAE, S-measure and IoU only, the three benchmarks/quality_probes.py compares)."""
    try:
        import warnings

        import py_sod_metrics as sod
    except ImportError:
        sys.exit(
            "benchmarks/quality.py needs pysodmetrics: pip install -e '.[bench]' && "
            "pip install --no-deps pysodmetrics (its pins on numpy/OpenCV are stale)"
        )

    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "use FmeasureV2": the classic F-measure is what papers report
        mae, sm = sod.MAE(), sod.Smeasure()
        extra = () if quick else (sod.Emeasure(), sod.WeightedFmeasure(), sod.Fmeasure())
    for metric in (mae, sm, *extra):
        metric.step(pred=mask, gt=alpha)
    out["mae"] = float(mae.get_results()["mae"])
    out["sm"] = float(sm.get_results()["sm"])
    if extra:
        em, wfm, fm = extra
        out["em"] = float(np.mean(em.get_results()["em"]["curve"]))
        out["wfm"] = float(wfm.get_results()["wfm"])
        out["maxf"] = float(np.max(fm.get_results()["fm"]["curve"]))
    p, g = mask >= 128, alpha >= 128
    union = int((p | g).sum())
    out["iou"] = float((p & g).sum() / union) if union else 1.0
    return out


def scored_truth(truth: np.ndarray, mask: np.ndarray, subset: str) -> np.ndarray:
    """``truth`` as it is scored against ``mask``: GrabCut's unknown band (128) takes
    whatever the prediction says, so it counts as right."""
    if subset != "grabcut":
        return truth
    unknown = truth == 128
    if not unknown.any():
        return truth
    out = truth.copy()
    out[unknown] = np.where(mask[unknown] >= 128, 255, 0)
    return out


def pass_key(p: Pass) -> str:
    return f"{p.size}{'f' if p.flip else ''}"


class Outputs:
    """Network outputs per (model, pass, image), cached on disk; the model loads on first need."""

    def __init__(self, model: str, backend: str, root: Path) -> None:
        self.model, self.backend, self.root = model, backend, root
        self._remover: Any = None

    @property
    def remover(self) -> Any:
        if self._remover is None:
            from cleancut import Remover

            self._remover = Remover(self.model, backend=self.backend).load()
        return self._remover

    @property
    def up(self) -> Any:
        """How the model's masks are upsampled (its recipe's: the quantised model's exact grid)."""
        return published_recipe(quantized=self.model == "isnet_quint8").up

    def get(self, name: str, pixels: np.ndarray, p: Pass) -> np.ndarray:
        path = self.root / self.model / pass_key(p) / f"{name}.npy"
        if path.is_file():
            return np.load(path).astype(np.float32)[None, None]
        session = self.remover.session_for(p, None, None)
        y = pass_output(session.run(pass_input(pixels, p, self.remover.recipe)), p)
        # stored as float16; returned as stored, so a first run scores what every rerun reads
        plane = y.reshape(y.shape[-2:]).astype(np.float16)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, plane)
        tmp.replace(path)
        return plane.astype(np.float32)[None, None]

    def combined(self, name: str, pixels: np.ndarray, passes: tuple[Pass, ...]) -> np.ndarray:
        return combine([self.get(name, pixels, p) for p in passes], IMGLY.average_gain)


@dataclass(frozen=True)
class Item:
    """One image to score: the photo, its truth, and (composites only) the recomposite data."""

    name: str
    subset: str
    pixels: np.ndarray
    truth: np.ndarray
    composite: quality_data.Composite | None = None


def real_items(split: devset.Split, limit: int | None) -> Iterator[Item]:
    for pair in devset.pairs(split, limit=limit):
        pixels, mask = pair.load()
        yield Item(pair.name, pair.subset, pixels, mask)


def synthetic_items(limit: int | None) -> Iterator[Item]:
    for comp in quality_data.build(limit):
        yield Item(comp.name, comp.subset, comp.image, comp.alpha, comp)


def score_item(item: Item, outputs: Outputs, methods: dict[str, Method]) -> list[dict[str, Any]]:
    """Every method's scores on one item; masks (and their scores) shared where equal."""
    rows = []
    ys: dict[tuple[Pass, ...], np.ndarray] = {}
    masks: dict[tuple[Any, ...], tuple[np.ndarray, dict[str, float]]] = {}
    soft = item.subset in devset.SOFT_SUBSETS
    band = edge_band(item.composite.alpha) if item.composite is not None else None
    for name, method in methods.items():
        t0 = time.perf_counter()
        if method.passes not in ys:
            ys[method.passes] = outputs.combined(item.name, item.pixels, method.passes)
        o = method.edges
        key = (method.passes, o.refine, o.threshold, o.feather, o.min_island, o.min_hole)
        if key not in masks:
            mask = make_mask(ys[method.passes], item.pixels, o, up=outputs.up)
            scores = mask_scores(mask, scored_truth(item.truth, mask, item.subset))
            if item.composite is None:
                scores["edge_err"] = alpha_band_error(mask, item.truth) if soft else float("nan")
            masks[key] = (mask, scores)
        mask, scores = masks[key]
        row = {"model": outputs.model, "method": name, "image": item.name, "subset": item.subset, **scores}
        if item.composite is not None:
            fg = foreground_colors(item.pixels, mask, o)
            row["edge_err"] = edge_color_error(fg, mask, item.composite, band)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def evaluate(
    models: list[str],
    methods: dict[str, Method],
    items: Callable[[], Iterator[Item]],
    backend: str,
    root: Path,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for model in models:
        outputs = Outputs(model, backend, root)
        for n, item in enumerate(items(), 1):
            rows.extend(score_item(item, outputs, methods))
            if n % 50 == 0:
                print(f"# {model}: {n} images", file=sys.stderr)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of each metric per (model, method, subset) and per (model, method) overall
    (``edge_err``: over the images that have one)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        method = r.get("method", r.get("option", ""))
        groups[(r["model"], method, r["subset"])].append(r)
        groups[(r["model"], method, "all")].append(r)
    out = []
    for (model, method, subset), rs in groups.items():
        means = {}
        for m in METRICS:
            vals = [r[m] for r in rs if m in r and not np.isnan(r[m])]
            means[m] = float(np.mean(vals)) if vals else float("nan")
        out.append({"model": model, "method": method, "subset": subset, "n": len(rs), **means})
    return out


def table(summary: list[dict[str, Any]], subsets: bool = True) -> str:
    head = f"| model | method | subset | n | {' | '.join(METRICS)} |"
    lines = [head, "|" + "---|" * (4 + len(METRICS))]
    for s in summary:
        if not subsets and s["subset"] != "all":
            continue
        vals = " | ".join(
            "–" if np.isnan(s[m]) else (f"{s[m]:.2f}" if m == "edge_err" else f"{s[m]:.4f}") for m in METRICS
        )
        lines.append(f"| {s['model']} | {s['method']} | {s['subset']} | {s['n']} | {vals} |")
    return "\n".join(lines)


def _sorted(summary: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    return sorted(
        summary, key=lambda s: (s["model"], s["subset"] != "all", s["subset"], order.index(s["method"]))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("real", "synthetic", "both"), default="both")
    ap.add_argument(
        "--split", choices=("tune", "report", "all"), default="report", help="dev-set half (real set)"
    )
    ap.add_argument("--models", default="isnet_fp16", help=f"comma list of: {', '.join(MODELS)}")
    ap.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help=f"'all' or a comma list of: {', '.join(METHODS)}"
    )
    ap.add_argument(
        "--limit",
        type=devset.limit_arg,
        default=None,
        help="at most N images per subset (real) / N composites",
    )
    ap.add_argument("--backend", default="auto", help="auto (default), onnxruntime or openvino")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON (with per-image rows) here")
    args = ap.parse_args()
    names = list(METHODS) if args.methods == "all" else args.methods.split(",")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    methods = {n: METHODS[n] for n in names}
    models = args.models.split(",")
    result: dict[str, Any] = {"split": args.split, "backend": args.backend, "methods": names}
    tables = []
    for which in ("real", "synthetic"):
        if args.set not in (which, "both"):
            continue
        if which == "real":
            rows = evaluate(
                models, methods, lambda: real_items(args.split, args.limit), args.backend, devset.CACHE
            )
        else:
            rows = evaluate(
                models,
                methods,
                lambda: synthetic_items(args.limit),
                args.backend,
                quality_data.CACHE / "passes",
            )
        summary = _sorted(summarise(rows), names)
        seconds = {n: float(np.mean([r["seconds"] for r in rows if r["method"] == n])) for n in names}
        result[which] = {"summary": summary, "post_seconds": seconds, "rows": rows}
        title = f"{which} photos, {args.split} half" if which == "real" else "synthetic composites"
        tables.append(f"## {title}\n" + table(summary))
    print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "rows"} if isinstance(v, dict) else v)
                      for k, v in result.items()}, indent=1))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
