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
from phenoseg.evaluation.tuning import FULL_GRID, coordinate_descent, decoder_params, set_decoder_params
from phenoseg.inference.runner import build_decoder, network_output
from phenoseg.io.datasets import find_image_file, image_pixel_size, load_manifest
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels
from phenoseg.models.zoo import load_model
from phenoseg.preprocess import prepare, resize_labels

GRID = FULL_GRID
TARGET = "nuclei"  # the val splits of accuracy.py's plan annotate nuclei


def cache_outputs(net, scale: float, limit: int | None) -> dict[str, list]:
    """Per dataset: [(raw output, truth labels)] with the network run at ``scale`` × the model's pixel size."""
    cfg = net.config
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
            data = prepare(image.data, px, cfg.pixel_size_um * scale, cfg.norm_percentiles).data
            raw = network_output(net, data)
            items.append((raw, read_labels(root / "labels" / f"{image_id}.tif")))
        out[dataset] = items
    return out


def score(decoder, t: int, cached: dict[str, list], params: dict) -> dict[str, dict]:
    """Scores per dataset of target ``t`` decoded with ``params``."""
    set_decoder_params(decoder, t, params)
    res = {}
    for dataset, items in cached.items():
        total = MatchCounts()
        for raw, truth in items:
            labels, _ = decoder.decode(raw)
            pred = resize_labels(labels[0, t].numpy(), truth.shape)
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
    t = net.config.targets.index(TARGET)
    start = decoder_params(decoder, t, GRID)
    runs = []
    for scale in args.scales:
        t0 = time.perf_counter()
        cached = cache_outputs(net, scale, args.limit)
        print(f"scale {scale}: network {time.perf_counter() - t0:.0f} s", flush=True)
        default_res = score(decoder, t, cached, start)
        default = {"params": dict(start), "criterion": criterion(default_res), "scores": default_res}
        print(f"  default {default['criterion']:.4f}", {d: (round(r['f1@0.5'], 3), round(r['f1_mean'], 3))
                                                         for d, r in default_res.items()}, flush=True)
        params, best, _ = coordinate_descent(lambda p, c=cached: criterion(score(decoder, t, c, p)), start, GRID,
                                             args.passes, log=lambda msg: print(" ", msg, flush=True))
        runs.append({"scale": scale, "default": default,
                     "best": {"params": params, "criterion": best, "scores": score(decoder, t, cached, params)}})
    name = net.config.name
    print(write_result(f"postprocess_sweep_{name}", {"model": args.model, "grid": GRID, "runs": runs}))


if __name__ == "__main__":
    main()
