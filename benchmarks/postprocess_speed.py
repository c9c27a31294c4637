"""Postprocessing time for 512², 1024², 2048² outputs with ~250 / ~1,000 / ~4,000 objects and for noise.

Network outputs are synthetic "ideal" maps (see phenoseg.synthetic), so the numbers measure the
postprocessing alone. Noise cases: (a) the seed map replaced by uniform noise, (b) every channel noise.
Run: `python benchmarks/postprocess_speed.py` → results/postprocess_speed.json
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import median_time, write_result

from phenoseg.evaluation.matching import match_counts, summarise
from phenoseg.inference.runner import build_decoder
from phenoseg.synthetic import ideal_model, ideal_output, synthetic_labels

CASES = [(512, 250), (1024, 1000), (2048, 4000)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = ideal_model()
    decoder = build_decoder(net)
    scripted = torch.jit.script(decoder)
    rows = []
    for size, n in CASES:
        truth = synthetic_labels((size, size), n, seed=size, radius=(5.0, 11.0))
        raw = ideal_output(truth, net.config)
        with torch.no_grad():
            t_eager, _ = median_time(lambda raw=raw: decoder(raw), args.repeats)
            t_script, _ = median_time(lambda raw=raw: scripted(raw), args.repeats)
            pred = decoder(raw)[0, 0].numpy()
        f1 = summarise(match_counts(truth, pred))["f1@0.9"]
        row = {"size": size, "objects": int(truth.max()), "eager_s": round(t_eager, 4),
               "scripted_s": round(t_script, 4), "f1@0.9_vs_truth": f1,
               "ms_per_object": round(1000 * t_eager / truth.max(), 4)}
        g = torch.Generator().manual_seed(size)
        noise_seed = raw.clone()
        noise_seed[:, 0] = torch.logit(torch.rand(size, size, generator=g).clamp(1e-4, 1 - 1e-4))
        noise_all = torch.randn(raw.shape, generator=g) * 2
        with torch.no_grad():
            row["noise_seed_map_s"] = round(median_time(lambda x=noise_seed: decoder(x), 3)[0], 4)
            row["noise_all_maps_s"] = round(median_time(lambda x=noise_all: decoder(x), 3)[0], 4)
            row["noise_seed_objects"] = int(decoder(noise_seed).max())
        row["noise_ratio"] = round(row["noise_seed_map_s"] / t_eager, 2)
        rows.append(row)
        print(row, flush=True)
    per_obj = [r["eager_s"] / r["objects"] for r in rows]
    summary = {
        "goal_1024_s": 0.3,
        "at_1024_s": rows[1]["eager_s"],
        "linearity_ms_per_object": [round(1000 * p, 4) for p in per_obj],
        "worst_noise_ratio": max(r["noise_ratio"] for r in rows),
        "reference_at_1024_s": 1.48,
        "reference_noise_s": 27.0,
    }
    print(summary)
    path = write_result("postprocess_speed", {"cases": rows, "summary": summary,
                                              "postprocess": vars(net.config.postprocess)})
    print("wrote", path)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
