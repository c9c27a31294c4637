"""Do ONNX Runtime and torch give the same objects? (issue 17: the default runtime may change only if so.)

Segments every val image of the bundled models' datasets with both runtimes and scores one against the other
(torch as the truth): F1@0.5 and F1^μ pooled per dataset, the share of pixels with equal labels, and each
runtime's val scores against the annotations.

    python benchmarks/backend_agreement.py [--limit N]   → results/backend_agreement.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import DATA, PLAN  # noqa: E402
from common import write_result  # noqa: E402

from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise  # noqa: E402
from phenoseg.inference.segmenter import Segmenter  # noqa: E402
from phenoseg.io.datasets import find_image_file, image_pixel_size, load_manifest  # noqa: E402
from phenoseg.io.images import read_image  # noqa: E402
from phenoseg.io.labels import read_labels  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="images per dataset")
    ap.add_argument("--split", default="val")
    args = ap.parse_args()
    out: dict = {}
    for model, plan in PLAN.items():
        segs = {b: Segmenter(model, device="cpu", backend=b) for b in ("torch", "onnx")}
        for dataset, assumed in plan:
            root = DATA / dataset
            if not root.is_dir():
                continue
            manifest = load_manifest(root)
            ids = [i for i, s in manifest["split"].items() if s == args.split][: args.limit]
            between, vs_truth = MatchCounts(), {b: MatchCounts() for b in segs}
            same, pixels = 0, 0
            for image_id in ids:
                image = read_image(find_image_file(root, image_id))
                px = image_pixel_size(manifest, image_id, None) or assumed
                labels = {b: s.segment(image, px).labels["nuclei"] for b, s in segs.items()}
                truth = read_labels(root / "labels" / f"{image_id}.tif")
                between = between + match_counts(labels["torch"], labels["onnx"])
                for b in segs:
                    vs_truth[b] = vs_truth[b] + match_counts(truth, labels[b])
                same += int(np.count_nonzero(labels["torch"] == labels["onnx"]))
                pixels += labels["torch"].size
            s = summarise(between)
            out[f"{model} / {dataset}"] = {
                "images": len(ids), "objects_torch": between.n_true, "objects_onnx": between.n_pred,
                "onnx_vs_torch_f1@0.5": s["f1@0.5"], "onnx_vs_torch_f1_mean": s["f1_mean"],
                "equal_label_pixels": same / max(pixels, 1),
                "val": {b: {k: summarise(c)[k] for k in ("f1@0.5", "f1_mean")} for b, c in vs_truth.items()}}
            print(dataset, out[f"{model} / {dataset}"], flush=True)
    path = write_result("backend_agreement", {"split": args.split, "datasets": out})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
