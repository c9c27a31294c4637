"""Package a trained model folder as a bundled model: retune thresholds on val, copy into the zoo,
write MODEL_CARD.md.

Usage: python tools/package_model.py RUN_DIR NAME --data DATASET... [--data-pixel-size NAME=UM ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from phenoseg.evaluation.datasets import evaluate_samples, network_outputs, selection_score
from phenoseg.evaluation.tuning import QUICK_GRID, set_config_params, tune_decoder
from phenoseg.inference.runner import build_decoder
from phenoseg.io.datasets import load_manifest
from phenoseg.models.zoo import load_model, replace_bundled_model
from phenoseg.training.instanseg.data import load_split

LICENCE_NOTES = {
    "monuseg": "CC BY-NC-SA 4.0 (MoNuSeg challenge; TCGA images)",
    "cpm15": "not stated by the source; TCGA-derived challenge data, research use",
    "consep_patches": "not stated by the source; CoNSeP (Warwick TIA lab) research use",
    "dsb2018_brightfield": "CC0 1.0 (BBBC038 / Data Science Bowl 2018)",
    "dsb2018_fluo": "CC0 1.0 (BBBC038 / Data Science Bowl 2018)",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("name")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--data-pixel-size", nargs="*", default=[])
    parser.add_argument("--windows", default="48,64")
    parser.add_argument("--no-tune", action="store_true", help="keep the thresholds the trainer tuned")
    parser.add_argument("--license", default="Apache-2.0", help="SPDX id the weights are released under")
    args = parser.parse_args()
    torch.set_num_threads(2)
    overrides = {k: float(v) for k, v in (x.split("=") for x in args.data_pixel_size)}
    net = load_model(args.run_dir)
    cfg = net.config
    samples = []
    for d in args.data if not args.no_tune else []:
        samples += load_split(d, "val", cfg.pixel_size_um, cfg.in_channels, overrides.get(Path(d).name), cfg.targets)
    raws = network_outputs(net, samples, "cpu")
    decoder = build_decoder(net)
    grid = {**QUICK_GRID, "window": [int(w) for w in args.windows.split(",")]}
    if samples:  # every target tuned on its own
        chosen = tune_decoder(decoder, len(cfg.targets), lambda t: selection_score(
            evaluate_samples(net, samples, "cpu", raws, decoder, targets=[t])), grid)
        for target, params in zip(cfg.targets, chosen):
            set_config_params(cfg, target, params)
            print(target, params, flush=True)
        per = evaluate_samples(net, samples, "cpu", raws, decoder)
    else:
        per = cfg.metrics.get("val_model_resolution")
    for pp in cfg.postprocess.values():
        pp.max_seeds_per_mpx = 8000
    cfg.name = args.name
    cfg.license = args.license
    cfg.metrics = {"val_model_resolution": per, "selection": "mean over datasets of F1^mu on val",
                   "training_step_of_best": cfg.metrics.get("step")}
    out = replace_bundled_model(net, args.name)
    datasets = {}
    for d in args.data:
        m = load_manifest(Path(d))
        datasets[m.get("name", Path(d).name)] = {"licence": m.get("license"), "citation": m.get("citation")}
    (out / "training_data.json").write_text(json.dumps(datasets, indent=2))
    print("packaged", out)


if __name__ == "__main__":
    main()
