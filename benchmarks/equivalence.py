"""Fingerprints of what the bundled models output, to show a refactor changed nothing.

For the first N val images of each dataset of `accuracy.py`'s plan: a SHA-256 of the labels on the input grid
(in-memory path, and with TTA for one image per dataset), and of the exported whole-pipeline TorchScript's
labels on one normalised crop per model. Run before and after a change and compare:

    python benchmarks/equivalence.py --out results/equivalence_before.json
    python benchmarks/equivalence.py --compare results/equivalence_before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from accuracy import DATA, PLAN

from phenoseg.inference.segmenter import Segmenter
from phenoseg.io.datasets import find_image_file, image_pixel_size, load_manifest
from phenoseg.io.images import read_image


def digest(a: np.ndarray) -> str:
    """SHA-256 (first 16 hex digits) of an array's shape and bytes."""
    h = hashlib.sha256(str(a.shape).encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def fingerprints(n_images: int) -> dict:
    """model → {dataset/image → labels digest}, plus TTA and TorchScript entries."""
    from phenoseg.export.torchscript import export_torchscript
    from phenoseg.models.zoo import load_model

    out: dict = {}
    for model, plan in PLAN.items():
        seg, seg_tta = Segmenter(model, device="cpu"), Segmenter(model, device="cpu", tta=True)
        entries: dict = {}
        first = None
        for dataset, assumed in plan:
            root = DATA / dataset
            manifest = load_manifest(root)
            ids = [i for i, s in manifest["split"].items() if s == "val"]
            done = 0
            for image_id in ids:
                image = read_image(find_image_file(root, image_id))
                if image.data.shape[0] != load_model(model).config.in_channels or done >= n_images:
                    continue
                px = image_pixel_size(manifest, image_id, None) or assumed
                labels = next(iter(seg.segment(image, px).labels.values()))
                entries[f"{dataset}/{image_id}"] = [digest(labels), int(labels.max())]
                if done == 0:
                    tta = next(iter(seg_tta.segment(image, px).labels.values()))
                    entries[f"{dataset}/{image_id}/tta"] = [digest(tta), int(tta.max())]
                    first = first or (image, px)
                done += 1
        net = load_model(model)
        with tempfile.TemporaryDirectory() as tmp:
            pt = export_torchscript(net, Path(tmp) / "m.pt")
            scripted = torch.jit.load(str(pt))
            x = torch.from_numpy(first[0].data.astype(np.float32))[None, :, :256, :256]
            ts = scripted(x)[0].numpy()
        entries["torchscript"] = [digest(ts), int(ts.max())]
        out[model] = entries
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4, help="val images per dataset")
    ap.add_argument("--out", help="write the fingerprints here (relative to benchmarks/)")
    ap.add_argument("--compare", help="compare with this earlier file (relative to benchmarks/)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    here = Path(__file__).resolve().parent
    now = fingerprints(args.images)
    if args.out:
        (here / args.out).write_text(json.dumps(now, indent=1) + "\n")
    if args.compare:
        before = json.loads((here / args.compare).read_text())
        diffs = [(m, k, before[m].get(k), v) for m in now for k, v in now[m].items() if before.get(m, {}).get(k) != v]
        n = sum(len(v) for v in now.values())
        for d in diffs:
            print("DIFFERENT", *d)
        print(f"{n - len(diffs)} of {n} fingerprints identical")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
