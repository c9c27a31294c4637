"""A 40-channel whole slide in bounded memory (issue 14): peak RSS and time of the whole `phenoseg segment`
command on pyramidal 40-channel OME-TIFFs of 5120² and 10240² px (0.5 µm/px, uint16, 4 levels), each with the
same 2048² region of synthetic multiplexed tissue (repeated 1024² block, 40 channels) on a dark background.

The whole 10240² slide is 8.4 GB uncompressed; the pipeline reads every channel tile by tile (tiles made
smaller as the channel count grows), so its peak memory must not follow the slide's size. Each command runs in
a fresh process (its own peak RSS), with the default slide outputs (OME-Zarr, GeoJSON, CSV).

    python benchmarks/channelnet_slide.py [--sizes 5120,10240] [--channels 40]  → results/channelnet_slide.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from phenoseg.synthetic.multiplex import render_multiplex  # noqa: E402
from phenoseg.synthetic.nuclei import synthetic_labels  # noqa: E402

PX = 0.5
TISSUE = 2048
BACKGROUND = 12  # counts: a dim, flat background (real slides are dark off the tissue)

CHILD = r"""
import json, resource, sys, time
from phenoseg.cli.main import main
t0 = time.perf_counter()
rc = main(sys.argv[1:])
print("RESULT " + json.dumps({"rc": rc, "seconds": time.perf_counter() - t0,
                               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def tissue_block(channels: int, size: int = 1024, seed: int = 7) -> np.ndarray:
    """(C, size, size) uint16 synthetic multiplexed tissue."""
    nuclei = synthetic_labels((size, size), int(size * size / 900), seed=seed, radius=(4, 8))
    img = render_multiplex(nuclei, np.random.default_rng(seed), n_channels=channels).image
    return np.clip(img + BACKGROUND, 0, 65535).astype(np.uint16)


def write_slide(path: Path, size: int, block: np.ndarray, tile: int = 512, levels: int = 4) -> Path:
    """Pyramidal CYX OME-TIFF of ``size``²: ``block`` repeated over a central TISSUE² region, flat elsewhere;
    written tile by tile (never the whole plane in memory)."""
    c = block.shape[0]
    lo = (size - TISSUE) // 2

    def tiles(level: int):
        step = 2 ** level
        n = size // step
        for ch in range(c):
            for y in range(0, n, tile):
                for x in range(0, n, tile):
                    ys = np.arange(y, y + tile) * step
                    xs = np.arange(x, x + tile) * step
                    out = np.full((tile, tile), BACKGROUND, np.uint16)
                    iy = (ys >= lo) & (ys < lo + TISSUE)
                    ix = (xs >= lo) & (xs < lo + TISSUE)
                    if iy.any() and ix.any():
                        by = (ys[iy] - lo)[:, None] % block.shape[1]
                        sub = block[ch][by, (xs[ix] - lo)[None, :] % block.shape[2]]
                        out[np.ix_(iy, ix)] = sub
                    yield out

    names = [f"marker{i:02d}" for i in range(c)]
    names[0] = "DAPI"
    opts = dict(tile=(tile, tile), compression="zlib", photometric="minisblack", dtype=np.uint16)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(tiles(0), shape=(c, size, size), subifds=levels - 1,
                 metadata={"axes": "CYX", "PhysicalSizeX": PX, "PhysicalSizeY": PX, "Channel": {"Name": names}},
                 **opts)
        for level in range(1, levels):
            n = size // 2 ** level
            tw.write(tiles(level), shape=(c, n, n), subfiletype=1, **opts)
    return path


def run_command(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(line[-1][7:])
    if out["rc"]:
        raise RuntimeError(proc.stderr[-3000:])
    return out


def agreement(zarr_path: Path, size: int, block: np.ndarray, backend: str) -> dict:
    """F1@0.5 of the slide's objects against one in-memory pass over the first tissue block (1024²), away
    from the block's edges (objects cut by the crop differ)."""
    from phenoseg.evaluation.matching import match_counts, summarise
    from phenoseg.inference.segmenter import Segmenter
    from phenoseg.io.omezarr import read_labels_level

    lo, n = (size - TISSUE) // 2, block.shape[1]
    one = Segmenter("fluorescence_nuclei_and_cells", device="cpu", backend=backend).segment(block, PX)
    inner = slice(64, n - 64)
    out = {}
    for target in ("nuclei", "cells"):
        slide = read_labels_level(zarr_path, target)[lo : lo + n, lo : lo + n]
        s = summarise(match_counts(one.labels[target][inner, inner], slide[inner, inner]))
        out[target] = {"f1@0.5": round(s["f1@0.5"], 3), "n_one_pass": s["n_true"], "n_slide": s["n_pred"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5120,10240")
    ap.add_argument("--channels", type=int, default=40)
    ap.add_argument("--backend", default="auto", choices=["torch", "onnx", "auto"])
    args = ap.parse_args()
    block = tissue_block(args.channels)
    rows = []
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            t = time.perf_counter()
            path = write_slide(tmp / f"slide{size}.ome.tif", size, block)
            write_s = time.perf_counter() - t
            out = tmp / f"out{size}"
            cmd = ["segment", str(path), "-o", str(out), "--quiet", "--backend", args.backend]
            r = run_command(cmd)
            summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
            r.update(size=size, channels=args.channels, file_gb=round(path.stat().st_size / 1e9, 2),
                     uncompressed_gb=round(args.channels * size * size * 2 / 1e9, 2), write_slide_s=round(write_s, 1),
                     tissue_megapixels=TISSUE * TISSUE / 1e6,
                     command=f"phenoseg segment SLIDE -o OUT --quiet --backend {args.backend}",
                     outputs=sorted(p.name for p in out.iterdir()))
            if size == min(int(s) for s in args.sizes.split(",")):
                r["slide_vs_one_pass"] = agreement(out / f"slide{size}.ome.zarr", size, block, args.backend)
            report = sorted(out.glob("*.csv"))
            r["csv_rows"] = sum(1 for _ in open(report[0])) - 1 if report else None
            if summary:
                r["summary"] = summary
            rows.append(r)
            print(json.dumps(r), flush=True)
    small, big = rows[0], rows[-1]
    result = {"backend": args.backend, "tissue": f"{TISSUE}² px of synthetic {args.channels}-channel tissue",
              "runs": rows,
              "peak_rss_ratio_largest_vs_smallest": round(big["peak_rss_mb"] / small["peak_rss_mb"], 3),
              "largest_peak_rss_mb": round(big["peak_rss_mb"]),
              "largest_uncompressed_gb": big["uncompressed_gb"],
              "goals": {"peak_rss_ratio": "<= 1.25", "peak_rss_mb": "well below the slide's uncompressed size"}}
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    write_result("channelnet_slide", result)


if __name__ == "__main__":
    main()
