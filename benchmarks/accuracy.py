"""Every bundled model on every matching `val` split of ../shared/data → JSON + a markdown table.

Scores are computed on the input grid (labels mapped back from the model's pixel size), with the
same matching as `phenoseg evaluate`. Datasets without a pixel size use the value the model card names.
Run: `python benchmarks/accuracy.py` → results/accuracy.json, results/accuracy.md
(`--models brightfield_nuclei=FOLDER` scores a candidate in a bundled model's place; `--no-subpixel` turns off
outlines from membership probabilities; `--name` sets the result file's name).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import RESULTS, write_result

from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise
from phenoseg.inference.segmenter import Segmenter
from phenoseg.io.datasets import find_image_file, image_pixel_size, load_manifest
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels
from phenoseg.models.zoo import bundled_model_dirs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# model → (dataset, pixel size to assume when the dataset has none)
PLAN = {
    "brightfield_nuclei": [("monuseg", None), ("cpm15", None), ("consep_patches", None), ("dsb2018_brightfield", 0.3)],
    "fluorescence_nuclei": [("dsb2018_fluo", 0.5)],
}
# published bars (method.md §1.7, thesis) and this project's issue minimums: (F1@0.5, F1^μ)
BARS = {"monuseg": (0.858, 0.573), "consep_patches": (0.701, 0.478)}
MINIMUMS = {"monuseg": (0.80, 0.52), "consep_patches": (0.65, 0.42), "dsb2018_fluo": (0.88, 0.62)}


def evaluate(seg: Segmenter, dataset: str, assumed_px: float | None, split: str, channels: int,
             limit: int | None = None, px_factor: float = 1.0) -> dict:
    """Scores of ``seg`` on the images of ``split`` that have ``channels`` channels (counts summed).

    ``px_factor`` ≠ 1 tells the segmenter a wrong pixel size (true × factor), to test robustness.
    """
    root = DATA / dataset
    manifest = load_manifest(root)
    total = MatchCounts()
    n, skipped, seconds = 0, 0, 0.0
    for image_id, s in manifest["split"].items():
        if s != split or (limit is not None and n >= limit):
            continue
        image = read_image(find_image_file(root, image_id))
        if image.data.shape[0] != channels:
            skipped += 1
            continue
        px = image_pixel_size(manifest, image_id, None) or assumed_px
        t = time.perf_counter()
        result = seg.segment(image, px * px_factor)
        seconds += time.perf_counter() - t
        pred = result.labels["nuclei"]
        total = total + match_counts(read_labels(root / "labels" / f"{image_id}.tif"), pred)
        n += 1
    out = summarise(total)
    out.update(n_images=n, skipped_other_channel_count=skipped, seconds=round(seconds, 2),
               assumed_pixel_size_um=assumed_px if not manifest.get("pixel_size_um") else None)
    return out


def model_channels(model: str) -> int:
    """Input channels of a bundled model."""
    from phenoseg.models.zoo import read_config, resolve_model_dir

    return read_config(resolve_model_dir(model)).in_channels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="val")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", metavar="PLAN=MODEL",
                        help="evaluate these (bundled names or folders) in a plan's place, e.g. "
                             "brightfield_nuclei=runs/bf_r2; only the plans named run")
    parser.add_argument("--datasets", nargs="*", help="only these datasets")
    parser.add_argument("--no-subpixel", action="store_true", help="outlines by the labels' bilinear vote only")
    parser.add_argument("--name", default="accuracy", help="result name (results/NAME.json, NAME.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    chosen = dict(m.split("=", 1) for m in args.models) if args.models else {m: m for m in PLAN}
    rows = []
    for plan_name, plan in PLAN.items():
        model = chosen.get(plan_name)
        if model is None or (model == plan_name and model not in bundled_model_dirs()):
            continue
        seg = Segmenter(model, device="cpu", subpixel=not args.no_subpixel)
        channels = model_channels(model)
        for dataset, px in plan:
            if not (DATA / dataset).is_dir() or (args.datasets and dataset not in args.datasets):
                continue
            m = evaluate(seg, dataset, px, args.split, channels)
            rows.append({"model": model, "dataset": dataset, **m})
            print(model, dataset, {k: m[k] for k in ("f1@0.5", "f1_mean", "pq", "n_images")}, flush=True)
    lines = ["| model | dataset (split) | images | F1@0.5 | F1^μ | SQ | PQ | issue minimum | thesis InstanSeg |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mn = MINIMUMS.get(r["dataset"])
        bar = BARS.get(r["dataset"])
        lines.append(
            f"| {r['model']} | {r['dataset']} ({args.split}) | {r['n_images']} | {r['f1@0.5']:.3f} | "
            f"{r['f1_mean']:.3f} | {r['sq']:.3f} | {r['pq']:.3f} | "
            f"{f'{mn[0]:.2f} / {mn[1]:.2f}' if mn else '–'} | {f'{bar[0]:.3f} / {bar[1]:.3f}' if bar else '–'} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(
        "# Accuracy of the bundled models\n\nMeasured by `python benchmarks/accuracy.py` on the `val` splits of "
        "`../shared/data` (dataset-level counts summed over images, IoU matching as StarDist).\n\n"
        + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))
    print("wrote", write_result(args.name, {"split": args.split, "models": chosen, "subpixel": not args.no_subpixel,
                                            "rows": rows}))


if __name__ == "__main__":
    main()
