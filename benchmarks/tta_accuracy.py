"""Accuracy gain and cost of test-time augmentation (8 flips / rotations) on `val` splits.

Run: `python benchmarks/tta_accuracy.py [--datasets dsb2018_fluo ...]` → results/tta_accuracy.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from accuracy import DATA, PLAN, evaluate, model_channels
from common import write_result

from phenoseg.inference.segmenter import Segmenter
from phenoseg.models.zoo import bundled_model_dirs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="*", help="default: every dataset of every bundled model")
    parser.add_argument("--limit", type=int, help="at most this many images per dataset")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="tta_accuracy", help="results/<OUT>.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for model, plan in PLAN.items():
        if model not in bundled_model_dirs():
            continue
        for dataset, px in plan:
            if (args.datasets and dataset not in args.datasets) or not Path(DATA / dataset).is_dir():
                continue
            channels = model_channels(model)
            plain = evaluate(Segmenter(model, device="cpu"), dataset, px, "val", channels, args.limit)
            tta = evaluate(Segmenter(model, device="cpu", tta=True), dataset, px, "val", channels, args.limit)
            row = {"model": model, "dataset": dataset, "n_images": plain["n_images"],
                   "plain": {k: plain[k] for k in ("f1@0.5", "f1_mean", "pq", "seconds")},
                   "tta": {k: tta[k] for k in ("f1@0.5", "f1_mean", "pq", "seconds")},
                   "gain_f1_mean": round(tta["f1_mean"] - plain["f1_mean"], 4),
                   "gain_f1@0.5": round(tta["f1@0.5"] - plain["f1@0.5"], 4),
                   "time_ratio": round(tta["seconds"] / max(plain["seconds"], 1e-9), 2)}
            rows.append(row)
            print(row, flush=True)
    print("wrote", write_result(args.out, {"split": "val", "rows": rows}))


if __name__ == "__main__":
    main()
