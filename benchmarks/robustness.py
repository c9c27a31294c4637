"""Robustness of the bundled models to the artefacts of real images, on the `val` splits of ../shared/data.

Each val image is segmented clean and with one injected artefact:
- ``bright_spot``: a saturated 20 × 20 px square (the type's maximum in every channel), at a random place;
- ``dark_spot``: the same square at 0 (ink, a fold, a dead region);
- ``hot_pixels``: 0.2 % of the pixels at the type's maximum (a camera's hot / stuck pixels);
- ``dust``: a few blurred discs (radius 4–12 px, ~0.3 % of the image), dark on brightfield and bright
  (3 × the image's 99.9th percentile) on fluorescence;
- ``nan_padding``: the image as float32 with a NaN border (12 % of the height on top, of the width on the
  left: a registered or stitched field); the labels are cropped back before scoring.

F1@0.5 is pooled per dataset (counts summed over its images), as in `benchmarks/accuracy.py`; the goal is
every artefact within 0.02 of the clean score. Besides the whole field, each row scores the field outside
the artefact (truth and predictions without the objects touching its footprint, clean and corrupted alike):
what normalisation can protect. Inside a nucleus-sized bright dust speck on fluorescence, the speck itself
looks like a nucleus. ``--limit`` caps the images per dataset.
Run: `python benchmarks/robustness.py [--out robustness]` → results/<out>.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from accuracy import DATA, PLAN, model_channels
from common import machine, write_result
from scipy import ndimage

from phenoseg.errors import PhenosegError
from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise
from phenoseg.inference.segmenter import Segmenter
from phenoseg.io.datasets import find_image_file, image_pixel_size, load_manifest
from phenoseg.io.images import Image, read_image
from phenoseg.io.labels import read_labels

ARTEFACTS = ("clean", "bright_spot", "dark_spot", "hot_pixels", "dust", "nan_padding")
MODALITY = {"brightfield_nuclei": "brightfield", "fluorescence_nuclei": "fluorescence"}


def type_max(data: np.ndarray) -> float:
    """The saturation value of an image's pixel type (its maximum for float images)."""
    return float(np.iinfo(data.dtype).max) if data.dtype.kind in "ui" else float(data.max())


def corrupt(image: Image, artefact: str, modality: str, rng: np.random.Generator
            ) -> tuple[Image, tuple, np.ndarray | None]:
    """``image`` with one artefact, the (row, col) offset of the original pixels in it, and the artefact's
    footprint on the original grid (None when it has none: scattered pixels, padding outside the image)."""
    data = image.data.copy()
    c, h, w = data.shape
    offset = (0, 0)
    footprint = None
    if artefact in ("bright_spot", "dark_spot"):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        data[:, y:y + 20, x:x + 20] = type_max(data) if artefact == "bright_spot" else 0
        footprint = np.zeros((h, w), bool)
        footprint[y:y + 20, x:x + 20] = True
    elif artefact == "hot_pixels":
        n = int(0.002 * h * w)
        data[:, rng.integers(0, h, n), rng.integers(0, w, n)] = type_max(data)
    elif artefact == "dust":
        mask = np.zeros((h, w), bool)
        yy, xx = np.mgrid[:h, :w]
        while mask.mean() < 0.003:
            r = rng.uniform(4, 12)
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        weight = ndimage.gaussian_filter(mask.astype(np.float32), 1.5)
        f = data.astype(np.float32)
        target = 0.0 if modality == "brightfield" else 3.0 * float(np.percentile(f, 99.9))
        f = f * (1 - weight) + target * weight
        data = np.clip(f, 0, type_max(data)).astype(data.dtype) if data.dtype.kind in "ui" else f
        footprint = weight > 0.05
    elif artefact == "nan_padding":
        ph, pw = int(0.12 * h), int(0.12 * w)
        padded = np.full((c, h + ph, w + pw), np.nan, np.float32)
        padded[:, ph:, pw:] = data
        data, offset = padded, (ph, pw)
    elif artefact != "clean":
        raise ValueError(artefact)
    return Image(data, image.pixel_size_um, list(image.channel_names), image.path, image.rgb), offset, footprint


def outside(labels: np.ndarray, footprint: np.ndarray | None) -> np.ndarray:
    """``labels`` without the objects that touch ``footprint`` (the field outside the artefact)."""
    if footprint is None:
        return labels
    hit = np.unique(labels[footprint])
    return np.where(np.isin(labels, hit[hit > 0]), 0, labels)


def run_dataset(seg: Segmenter, model: str, dataset: str, assumed_px: float | None, limit: int) -> list[dict]:
    """One row per artefact: pooled scores over the dataset's val images."""
    root = DATA / dataset
    manifest = load_manifest(root)
    ids = [i for i, s in sorted(manifest["split"].items()) if s == "val"][:limit]
    totals = {a: MatchCounts() for a in ARTEFACTS}
    # the field outside each artefact's footprint, with the clean prediction scored on the same objects
    out_clean = {a: MatchCounts() for a in ARTEFACTS}
    out_bad = {a: MatchCounts() for a in ARTEFACTS}
    failed = {a: 0 for a in ARTEFACTS}
    seconds = {a: 0.0 for a in ARTEFACTS}
    n = 0
    for k, image_id in enumerate(ids):
        image = read_image(find_image_file(root, image_id))
        if image.data.shape[0] != model_channels(model):
            continue
        truth = read_labels(root / "labels" / f"{image_id}.tif")
        px = image_pixel_size(manifest, image_id, None) or assumed_px
        n += 1
        for artefact in ARTEFACTS:
            rng = np.random.default_rng(1000 * k + ARTEFACTS.index(artefact))
            bad, (oy, ox), footprint = corrupt(image, artefact, MODALITY[model], rng)
            t = time.perf_counter()
            try:
                pred = seg.segment(bad, px).labels["nuclei"][oy:, ox:]
            except PhenosegError as exc:  # an input refused: every object counts as missed
                failed[artefact] += 1
                print(f"  {dataset}/{image_id} {artefact}: refused ({exc})", flush=True)
                pred = np.zeros_like(truth)
            seconds[artefact] += time.perf_counter() - t
            totals[artefact] = totals[artefact] + match_counts(truth, pred)
            if artefact == "clean":
                clean_pred = pred
            t_out = outside(truth, footprint)
            out_clean[artefact] = out_clean[artefact] + match_counts(t_out, outside(clean_pred, footprint))
            out_bad[artefact] = out_bad[artefact] + match_counts(t_out, outside(pred, footprint))
    rows = []
    clean = summarise(totals["clean"])
    for artefact in ARTEFACTS:
        s = summarise(totals[artefact])
        oc, ob = summarise(out_clean[artefact]), summarise(out_bad[artefact])
        rows.append({"model": model, "dataset": dataset, "artefact": artefact, "n_images": n,
                     "n_true_objects": int(totals[artefact].n_true), "f1@0.5": round(s["f1@0.5"], 4),
                     "f1_mean": round(s["f1_mean"], 4), "delta_f1@0.5": round(s["f1@0.5"] - clean["f1@0.5"], 4),
                     "outside_n_true_objects": int(out_bad[artefact].n_true),
                     "outside_delta_f1@0.5": round(ob["f1@0.5"] - oc["f1@0.5"], 4),
                     "refused": failed[artefact], "seconds": round(seconds[artefact], 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=20, help="val images per dataset")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="robustness", help="results/<OUT>.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for model, plan in PLAN.items():
        seg = Segmenter(model, device="cpu")
        for dataset, px in plan:
            if not (DATA / dataset).is_dir():
                continue
            for r in run_dataset(seg, model, dataset, px, args.limit):
                rows.append(r)
                print(model, dataset, r["artefact"], r["f1@0.5"], f"Δ {r['delta_f1@0.5']:+.3f}",
                      f"outside the artefact Δ {r['outside_delta_f1@0.5']:+.3f}",
                      f"({r['n_true_objects']} objects)", flush=True)
    worst = min((r["delta_f1@0.5"] for r in rows if r["artefact"] != "clean"), default=0.0)
    worst_out = min((r["outside_delta_f1@0.5"] for r in rows if r["artefact"] != "clean"), default=0.0)
    print(f"worst ΔF1@0.5 = {worst:+.4f}, outside the artefacts {worst_out:+.4f} (goal ≥ −0.02)")
    print(write_result(args.out, {"machine": machine(), "limit": args.limit, "worst_delta_f1@0.5": worst,
                                  "worst_outside_delta_f1@0.5": worst_out,
                                  "goal": "every artefact within 0.02 of the clean F1@0.5", "rows": rows}))


if __name__ == "__main__":
    main()
