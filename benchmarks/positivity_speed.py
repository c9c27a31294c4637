"""Speed of marker positivity (issue 16): the ISAB over one million 64-d embeddings, and whole images of
cells × markers end to end (crops, encoder, ISAB), for growing cells × markers (linear?), ONNX Runtime (what
``auto`` runs for many cells) and torch side by side; and the whole ``phenoseg positivity`` command on
10,000 cells × 20 markers (reading, measuring, CSV included).

    python benchmarks/positivity_speed.py [--model marker_positivity]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, write_result  # noqa: E402

from phenoseg.models.zoo import load_model  # noqa: E402
from phenoseg.phenotype.positivity import PositivityPredictor  # noqa: E402
from phenoseg.synthetic.markers import render_marker  # noqa: E402
from phenoseg.synthetic.multiplex import MultiplexSettings, grow_cells  # noqa: E402
from phenoseg.synthetic.nuclei import dense_labels  # noqa: E402

PX = 0.5


def scene(n_cells: int, markers: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (markers, Y, X) float32, cells, nuclei) with about ``n_cells`` cells 10 µm apart."""
    spacing = 20.0
    side = int(np.sqrt(n_cells) * spacing)
    nuclei = dense_labels((side, side), spacing=spacing, seed=seed)
    nuclei = np.where(nuclei > 0, nuclei, 0)
    cells = grow_cells(nuclei, np.random.default_rng(seed), MultiplexSettings()).astype(np.int64)
    gen = torch.Generator().manual_seed(seed)
    image = np.stack([render_marker(cells, nuclei, gen)[0] for _ in range(markers)])
    return image, cells, nuclei


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="marker_positivity")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--name", default="positivity_speed")
    ap.add_argument("--quick", action="store_true", help="small sizes only (a check of the script)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    net = model.eval()
    with torch.no_grad():
        emb = torch.randn(10_000 if args.quick else 1_000_000, net.config.embed_dim)
        isab_s, isab_all = median_time(lambda: net.set_logits(emb), args.repeats)
    print(f"ISAB, 1M embeddings: {isab_s:.2f} s")
    fast = PositivityPredictor(model, backend="onnx")
    slow = PositivityPredictor(model, backend="torch")
    rows = []
    sizes = ((400, 2), (400, 5)) if args.quick else ((2500, 5), (2500, 20), (10000, 5), (10000, 20))
    for n_cells, markers in sizes:
        image, cells, _ = scene(n_cells, markers)
        n = int(len(np.unique(cells)) - 1)
        chans = list(range(markers))
        onnx_s, _ = median_time(lambda image=image, cells=cells, chans=chans: fast.predict(image, cells, PX, chans),
                                args.repeats)
        row = {"cells": n, "markers": markers, "image_px": list(cells.shape), "onnx_s": round(onnx_s, 3),
               "onnx_ms_per_cell_marker": round(1e3 * onnx_s / (n * markers), 4)}
        if markers == 5:  # torch is ~10x slower: timed on the smaller runs only
            torch_s, _ = median_time(lambda image=image, cells=cells, chans=chans: slow.predict(image, cells, PX,
                                                                                                 chans), 1)
            row.update(torch_s=round(torch_s, 3), torch_ms_per_cell_marker=round(1e3 * torch_s / (n * markers), 4))
        rows.append(row)
        print(row)
    image, cells, _ = scene(400, 2) if args.quick else scene(10000, 20)
    with tempfile.TemporaryDirectory() as tmp:
        img_p, cell_p = Path(tmp) / "image.tif", Path(tmp) / "cells.tif"
        tifffile.imwrite(img_p, image, metadata={"axes": "CYX"})
        tifffile.imwrite(cell_p, cells.astype(np.uint32))
        cmd = [sys.executable, "-m", "phenoseg", "positivity", str(img_p), "--cells", str(cell_p), "--pixel-size",
               str(PX), "--model", args.model, "-o", str(Path(tmp) / "out"), "--outputs", "csv", "--quiet"]
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            subprocess.run(cmd, check=True)
            times.append(time.perf_counter() - t)
    command_s = float(np.median(times))
    print(f"phenoseg positivity, 10k cells × 20 markers, CSV: {command_s:.1f} s")
    if args.quick:
        return
    path = write_result(args.name, {
        "model": args.model, "isab_1M_embeddings_s": round(isab_s, 3), "isab_runs_s": [round(t, 3) for t in isab_all],
        "goal_isab_s": 2.0, "rows": rows, "command_10k_cells_20_markers_s": round(command_s, 2),
        "command_runs_s": [round(t, 2) for t in times], "goal_command_s": 60.0,
        "command": "phenoseg positivity IMAGE --cells CELLS --pixel-size 0.5 --outputs csv (subprocess, whole)"})
    print(f"→ {path}")


if __name__ == "__main__":
    main()
