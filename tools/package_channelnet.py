"""Package a ChannelNet training run as the bundled `fluorescence_nuclei_and_cells` model: thresholds tuned per
target on the validation images (synthetic multiplexed fields from the val nucleus maps + DSB2018 fluorescence
val), object statistics of its training objects, and the validation scores written into config.json.

    python tools/package_channelnet.py runs/channelnet [--data ../shared/data] [--val-synthetic 24]

MODEL_CARD.md in the zoo folder is kept (written by hand from the run's record).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from phenoseg.evaluation.datasets import evaluate_samples, network_outputs, selection_score
from phenoseg.evaluation.tuning import QUICK_GRID, set_config_params, tune_decoder
from phenoseg.inference.plausibility import object_statistics
from phenoseg.inference.runner import build_decoder
from phenoseg.io.datasets import load_manifest
from phenoseg.models.zoo import load_model, replace_bundled_model
from phenoseg.synthetic.multiplex import MultiplexSettings
from phenoseg.training.channelnet import RECIPE
from phenoseg.training.instanseg.data import load_split
from phenoseg.training.multiplex import as_two_targets, crop_map, nucleus_maps, synthetic_sample, validation_samples

NAME = "fluorescence_nuclei_and_cells"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--val-synthetic", type=int, default=24)
    ap.add_argument("--val-real", type=int, default=30, help="DSB2018 fluorescence val images used (of 81)")
    ap.add_argument("--no-tune", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    net = load_model(args.run_dir)
    cfg = net.config
    overrides = RECIPE["data_pixel_size"]
    roots = [str(Path(args.data) / n) for n in RECIPE["nucleus_data"]]
    real_roots = [str(Path(args.data) / n) for n in RECIPE["real_data"]]
    if not cfg.training:  # a run still going: its record so far, from its checkpoint
        info = json.loads((Path(args.run_dir) / "checkpoint" / "state.json").read_text())["info"]
        cfg.training = {"kind": "channelnet", "recipe": RECIPE, "steps": info["step"],
                        "crops_seen": info["crops_seen"], "minutes": round(info["elapsed_s"] / 60, 1),
                        "finished": False}
    val_maps = nucleus_maps(roots, "val", cfg.pixel_size_um, overrides)
    samples = validation_samples(val_maps, args.val_synthetic, 256, 101)
    for r in real_roots:
        samples += [as_two_targets(s) for s in load_split(r, "val", cfg.pixel_size_um, 1,
                                                          overrides.get(Path(r).name), ["nuclei"], args.val_real)]
    raws = network_outputs(net, samples, "cpu")
    decoder = build_decoder(net)
    if not args.no_tune:
        chosen = tune_decoder(decoder, len(cfg.targets), lambda t: selection_score(
            evaluate_samples(net, samples, "cpu", raws, decoder, targets=[t])), QUICK_GRID)
        for target, params in zip(cfg.targets, chosen):
            set_config_params(cfg, target, params)
            print(target, params, flush=True)
    per = evaluate_samples(net, samples, "cpu", raws, build_decoder(net))
    # what the training objects looked like: synthetic fields from the train maps, nuclei and cells apart
    rng = np.random.default_rng(5)
    maps = nucleus_maps(roots, "train", cfg.pixel_size_um, overrides)
    drawn = [synthetic_sample(crop_map(maps, 256, rng, (0.7, 2.2)), rng, MultiplexSettings(), 2) for _ in range(60)]
    cfg.object_stats = {t: object_statistics([(s.labels[i], cfg.pixel_size_um) for s in drawn])
                        for i, t in enumerate(cfg.targets)}
    cfg.name = NAME
    cfg.license = "Apache-2.0"
    cfg.metrics = {"val_model_resolution": per, "selection": "mean over datasets and targets of F1^mu on val",
                   "training_step_of_best": cfg.metrics.get("step"),
                   "val_images": {"synthetic_multiplex": args.val_synthetic, "real": len(samples) - args.val_synthetic}}
    out = replace_bundled_model(net, NAME)
    history = Path(args.run_dir) / "history.json"
    if history.is_file():
        shutil.copy(history, out / "training_history.json")
    datasets = {}
    for d in sorted(set(roots + real_roots)):
        m = load_manifest(Path(d))
        datasets[m.get("name", Path(d).name)] = {"licence": m.get("license"), "citation": m.get("citation")}
    (out / "training_data.json").write_text(json.dumps(datasets, indent=2))
    print(json.dumps({k: (round(v["f1@0.5"], 3), round(v["f1_mean"], 3), v["n_true"]) for k, v in per.items()}))
    print("packaged", out)


if __name__ == "__main__":
    main()
