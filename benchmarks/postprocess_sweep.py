"""Postprocessing thresholds and inference scale of a bundled model, chosen on `val` splits.

The network runs once per image and inference scale; the decoder is then re-run for each setting by
coordinate descent (one parameter at a time, two passes). Scores are on the input grid, as in
`benchmarks/accuracy.py`; the criterion is the mean over datasets of (F1@0.5 + F1^μ) / 2.
Run: `python benchmarks/postprocess_sweep.py brightfield_nuclei` → results/postprocess_sweep_<model>.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from accuracy import DATA, PLAN
from common import write_result

from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise
from phenoseg.inference.preprocess import percentile_normalise_tensor, resample_image, resize_labels
from phenoseg.inference.runner import build_decoder, network_output
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels
from phenoseg.models.zoo import load_model
from phenoseg.training.dataset import find_image_file, image_pixel_size, load_manifest

GRID = {
    "seed_threshold": [0.3, 0.4, 0.5, 0.6, 0.7],
    "mask_threshold": [0.3, 0.4, 0.5, 0.6],
    "seed_radius": [1, 2, 3, 4],
    "iou_threshold": [0.2, 0.4, 0.6],
    "min_area": [4, 8, 16],
}


def cache_outputs(net, scale: float, limit: int | None) -> dict[str, list]:
    """Per dataset: [(raw output, truth labels)] with the network run at ``scale`` × the model's pixel size."""
    cfg = net.config
    lo, hi = cfg.norm_percentiles
    out: dict[str, list] = {}
    for dataset, assumed in PLAN[net.config.name]:
        root = DATA / dataset
        manifest = load_manifest(root)
        items = []
        for image_id, s in manifest["split"].items():
            if s != "val" or (limit is not None and len(items) >= limit):
                continue
            image = read_image(find_image_file(root, image_id))
            if image.data.shape[0] != cfg.in_channels:
                continue
            px = image_pixel_size(manifest, image_id, None) or assumed
            norm = percentile_normalise_tensor(torch.from_numpy(image.data.astype(np.float32)), lo, hi)
            data = resample_image(norm.numpy(), px / (cfg.pixel_size_um * scale))
            raw = network_output(net, data)
            items.append((raw, read_labels(root / "labels" / f"{image_id}.tif")))
        out[dataset] = items
    return out


def score(decoder, cached: dict[str, list], params: dict) -> dict[str, dict]:
    """Scores per dataset of the decoder with ``params``."""
    decoder.seed_radius = int(params["seed_radius"])
    decoder.iou_threshold = float(params["iou_threshold"])
    res = {}
    for dataset, items in cached.items():
        total = MatchCounts()
        for raw, truth in items:
            labels, _ = decoder.decode(raw, float(params["seed_threshold"]), float(params["mask_threshold"]),
                                       int(params["min_area"]))
            pred = resize_labels(labels[0, 0].numpy(), truth.shape)
            total = total + match_counts(truth, pred)
        res[dataset] = summarise(total)
    return res


def criterion(res: dict[str, dict]) -> float:
    """Mean over datasets of (F1@0.5 + F1^μ) / 2."""
    return float(np.mean([(r["f1@0.5"] + r["f1_mean"]) / 2 for r in res.values()]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", help="bundled model name or model folder")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0],
                        help="pixel size multipliers to try (0.8: run at 0.8 × the model's pixel size)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per dataset")
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    net = load_model(args.model, "cpu")
    decoder = build_decoder(net)
    pp = net.config.postprocess
    start = {"seed_threshold": pp.seed_threshold, "mask_threshold": pp.mask_threshold,
             "seed_radius": pp.seed_radius, "iou_threshold": pp.iou_threshold, "min_area": pp.min_area_px}
    runs = []
    for scale in args.scales:
        t = time.perf_counter()
        cached = cache_outputs(net, scale, args.limit)
        print(f"scale {scale}: network {time.perf_counter() - t:.0f} s", flush=True)
        params = dict(start)
        best_res = score(decoder, cached, params)
        best = criterion(best_res)
        default = {"params": dict(params), "criterion": best, "scores": best_res}
        print(f"  default {best:.4f}", {d: (round(r['f1@0.5'], 3), round(r['f1_mean'], 3))
                                         for d, r in best_res.items()}, flush=True)
        for _ in range(args.passes):
            for name, values in GRID.items():
                for v in values:
                    if v == params[name]:
                        continue
                    trial = {**params, name: v}
                    res = score(decoder, cached, trial)
                    c = criterion(res)
                    if c > best + 1e-4:
                        best, best_res, params = c, res, trial
                        print(f"  {name}={v}: {c:.4f}", {d: (round(r['f1@0.5'], 3), round(r['f1_mean'], 3))
                                                          for d, r in res.items()}, flush=True)
        runs.append({"scale": scale, "default": default,
                     "best": {"params": params, "criterion": best, "scores": best_res}})
    name = net.config.name
    print(write_result(f"postprocess_sweep_{name}", {"model": args.model, "grid": GRID, "runs": runs}))


if __name__ == "__main__":
    main()
