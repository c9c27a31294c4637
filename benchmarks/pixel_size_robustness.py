"""How accuracy falls when the pixel size a user gives is a little off (e.g. a 20× scan said to be 0.5 µm/px
when it is 0.46), per model, on the brightfield `val` splits of ../shared/data.

The segmenter is told true pixel size × factor, so objects reach the network larger (factor < 1) or smaller
(factor > 1) than it was trained on; scores are on the input grid as in `benchmarks/accuracy.py`.
Run: `python benchmarks/pixel_size_robustness.py [--models brightfield_nuclei path/to/model ...]`
→ results/pixel_size_robustness.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from accuracy import DATA, PLAN, evaluate
from common import write_result

from phenoseg.inference.segmenter import Segmenter
from phenoseg.models.zoo import load_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["brightfield_nuclei"], help="bundled names or folders")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.8, 0.9, 1.0, 1.1, 1.25])
    parser.add_argument("--datasets", nargs="+", default=["monuseg", "cpm15", "consep_patches"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="pixel_size_robustness", help="results/<OUT>.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plan = dict(PLAN["brightfield_nuclei"])
    rows = []
    for model in args.models:
        net = load_model(model, "cpu")
        seg = Segmenter(net, device="cpu")
        for dataset in args.datasets:
            if not (DATA / dataset).is_dir():
                continue
            for factor in args.factors:
                m = evaluate(seg, dataset, plan.get(dataset), "val", net.config.in_channels, px_factor=factor)
                rows.append({"model": str(model), "dataset": dataset, "factor": factor,
                             **{k: m[k] for k in ("f1@0.5", "f1_mean", "n_images", "seconds")}})
                print(Path(str(model)).name, dataset, factor, round(m["f1@0.5"], 3), round(m["f1_mean"], 3), flush=True)
    for model in args.models:
        for factor in args.factors:
            sel = [r["f1_mean"] for r in rows if r["model"] == str(model) and r["factor"] == factor]
            if sel:
                print(f"{Path(str(model)).name} factor {factor}: mean F1^μ {sum(sel) / len(sel):.4f}")
    print(write_result(args.out, {"models": [str(m) for m in args.models], "factors": args.factors, "rows": rows}))


if __name__ == "__main__":
    main()
