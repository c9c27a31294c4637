"""Throughput on many small images, batched (issue 17's GPU check; runs on the CPU too, to test it).

The thesis ran 199 images with 36,073 nuclei in 9.4 s on a laptop Quadro RTX 3000. Here: N real images
(MoNuSeg / CoNSeP val and train tiles cut to SIZE², at the model's pixel size; synthetic ones without
../shared) go through the whole pipeline (normalisation, network, postprocessing: the scripted
:class:`~phenoseg.export.torchscript.InstanSegPipeline`) in batches of B, after one warm-up batch.
Reports images/s, nuclei/s and the seconds for N images, per batch size, with the device's name.

    python benchmarks/gpu_throughput.py --device cuda --images 199 --batch 1 8 32   → results/gpu_throughput.json
    python benchmarks/gpu_throughput.py --device cpu --images 8 --batch 1 4          (a check of the script)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiles(n: int, size: int) -> tuple[np.ndarray, str]:
    """(n, 3, size, size) float32 H&E at 0.5 µm/px."""
    from phenoseg.io.datasets import find_image_file, image_pixel_size, load_manifest
    from phenoseg.io.images import read_image
    from phenoseg.preprocess import resample_image

    out = []
    for name in ("monuseg", "consep_patches", "cpm15"):
        root = SHARED / name
        if not root.is_dir():
            continue
        manifest = load_manifest(root)
        for image_id in sorted(manifest["split"]):
            img = read_image(find_image_file(root, image_id))
            px = image_pixel_size(manifest, image_id, None) or 0.5
            data = resample_image(img.data.astype(np.float32), px / 0.5)
            for y in range(0, data.shape[1] - size + 1, size):
                for x in range(0, data.shape[2] - size + 1, size):
                    out.append(data[:, y:y + size, x:x + size])
                    if len(out) == n:
                        return np.stack(out), "real H&E tiles"
    from phenoseg.synthetic import render_image, synthetic_labels

    real = len(out)
    while len(out) < n:
        lab = synthetic_labels((size, size), 60, seed=len(out), radius=(5, 11))
        out.append(render_image(lab).astype(np.float32))
    return np.stack(out[:n]), "synthetic" if not real else f"{real} real H&E tiles + synthetic"


def run_batches(pipe, data: np.ndarray, b: int, dev: torch.device, limit: int | None = None) -> tuple[float, int]:
    """(seconds, nuclei) for the images (the first ``limit``) in batches of ``b``."""
    nuclei = 0
    n = len(data) if limit is None else min(limit, len(data))
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, n, b):
            lab = pipe(torch.from_numpy(data[i:min(i + b, n)]).to(dev, non_blocking=True))
            nuclei += sum(int(torch.unique(lab[j, 0]).numel()) - 1 for j in range(lab.shape[0]))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t, nuclei


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default="brightfield_nuclei")
    ap.add_argument("--images", type=int, default=199)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--name", default="gpu_throughput")
    args = ap.parse_args()
    from phenoseg.export.torchscript import InstanSegPipeline
    from phenoseg.models.zoo import load_model

    dev = torch.device(args.device)
    pipe = torch.jit.script(InstanSegPipeline(load_model(args.model, torch.device("cpu")))).to(dev).eval()
    data, source = tiles(args.images, args.size)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    runs = {}
    for b in args.batch:
        run_batches(pipe, data, b, dev, b)  # warm-up (scripting, kernels, allocator)
        seconds, nuclei = run_batches(pipe, data, b, dev)
        runs[str(b)] = {"seconds": seconds, "images_per_s": len(data) / seconds, "nuclei": nuclei,
                        "nuclei_per_s": nuclei / seconds}
        print(f"batch {b}: {len(data)} images, {nuclei} nuclei in {seconds:.2f} s "
              f"({len(data) / seconds:.1f} img/s)", flush=True)
    if dev.type == "cuda":
        runs["peak_memory_gb"] = torch.cuda.max_memory_allocated(dev) / 1e9
    out = write_result(args.name, {"device": name, "model": args.model, "images": len(data), "size": args.size,
                                   "source": source, "batches": runs,
                                   "thesis": {"images": 199, "nuclei": 36073, "seconds": 9.4,
                                              "device": "Quadro RTX 3000 (laptop)"}})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
