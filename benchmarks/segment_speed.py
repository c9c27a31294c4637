"""End-to-end Segmenter time on a 2048×2048 H&E image at 0.5 µm/px, split into its stages.

The image is a mosaic of real MoNuSeg H&E tiles from ../shared/data (resampled to 0.5 µm/px); without
that folder a synthetic image is used (and marked so in the JSON).
Run: `python benchmarks/segment_speed.py [--model NAME_OR_DIR]` → results/segment_speed.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from common import write_result

from phenoseg.inference.onnx_backend import OnnxNetwork
from phenoseg.inference.optimise import count_flops, frozen_network
from phenoseg.inference.segmenter import Segmenter
from phenoseg.models.zoo import load_model
from phenoseg.normalise import percentile_normalise
from phenoseg.preprocess import pad_to_multiple, resample_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "monuseg"
SIZE = 2048


def he_mosaic() -> tuple[np.ndarray, str]:
    """(Y, X, 3) uint8 mosaic of real H&E tiles at 0.5 µm/px, or a synthetic image."""
    files = sorted((SHARED / "images").glob("*.png")) if SHARED.is_dir() else []
    if not files:
        from phenoseg.synthetic import render_image, synthetic_labels

        lab = synthetic_labels((SIZE, SIZE), 4000, seed=0, radius=(5, 11))
        return np.moveaxis(render_image(lab), 0, -1), "synthetic"
    from PIL import Image

    canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
    tiles = []
    for f in files:
        arr = np.asarray(Image.open(f).convert("RGB")).astype(np.float32)
        small = resample_image(np.moveaxis(arr, -1, 0), 0.2521 / 0.5)
        tiles.append(np.clip(np.moveaxis(small, 0, -1), 0, 255).astype(np.uint8))
    step = tiles[0].shape[0]
    k = 0
    for y in range(0, SIZE, step):
        for x in range(0, SIZE, step):
            t = tiles[k % len(tiles)]
            k += 1
            h, w = min(step, SIZE - y), min(step, SIZE - x)
            canvas[y : y + h, x : x + w] = t[:h, :w]
    return canvas, f"monuseg mosaic of {len(files)} tiles"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="brightfield_nuclei")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image, source = he_mosaic()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "he.tif"
        tifffile.imwrite(path, image, photometric="rgb", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
        seg = Segmenter(args.model, device="cpu", backend=args.backend)
        result = seg.segment(path)  # warm-up (also builds the frozen network)
        net = load_model(args.model)
        frozen = OnnxNetwork(net) if args.backend == "onnx" else frozen_network(net)
        x = torch.from_numpy(percentile_normalise(np.moveaxis(image, -1, 0)))[None]
        x, _ = pad_to_multiple(x, net.stride)
        runs, eager, alone = [], [], []
        with torch.no_grad():
            frozen(x)
            for _ in range(args.repeats):  # interleaved, so that drifts of this noisy machine hit all three alike
                t = time.perf_counter()
                runs.append(seg.segment(path))
                runs[-1].timings["wall_s"] = time.perf_counter() - t
                t = time.perf_counter()
                frozen(x)
                alone.append(time.perf_counter() - t)
                t = time.perf_counter()
                net(x)
                eager.append(time.perf_counter() - t)
        stages = {k: round(float(np.median([r.timings[k] for r in runs])), 3) for k in runs[0].timings}
        total = float(np.median([r.timings["wall_s"] for r in runs]))
        ratios = [r.timings["wall_s"] / a for r, a in zip(runs, alone)]
        net_eager, net_frozen = float(np.median(eager)), float(np.median(alone))
    mp = SIZE * SIZE / 1e6
    flops = count_flops(net, SIZE, SIZE, 3)
    payload = {
        "image": {"size": SIZE, "pixel_size_um": 0.5, "source": source, "megapixels": round(mp, 3)},
        "model": args.model,
        "backend": args.backend,
        "objects": int(result.labels["nuclei"].max()),
        "end_to_end_s": round(total, 3),
        "end_to_end_s_per_mp": round(total / mp, 3),
        "stages_s": stages,
        "network_only_s": {"eager": round(net_eager, 3),
                           ("onnx" if args.backend == "onnx" else "frozen_channels_last"): round(net_frozen, 3)},
        "network_gflop_per_mp": round(flops / 1e9 / mp, 1),
        "pipeline_over_network_ratio": round(float(np.median(ratios)), 3),
        "ratio_per_repeat": [round(r, 3) for r in ratios],
        "repeats": args.repeats,
        "goals": {"end_to_end_s_per_mp": 2.0, "pipeline_over_network_ratio": 1.3},
        "reference": {"network_only_s_per_mp": 5.5, "pipeline_s_per_mp": 16, "stardist_s_per_mp": 1.25},
    }
    print(payload)
    name = "segment_speed" if args.backend == "torch" else f"segment_speed_{args.backend}"
    print("wrote", write_result(name, payload))


if __name__ == "__main__":
    main()
