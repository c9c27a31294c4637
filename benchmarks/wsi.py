"""Whole-slide throughput and peak memory on synthetic slides built from real H&E tiles.

Slides of 4096², 8192² and 16384² px at 0.5 µm/px (pyramidal OME-TIFF, 3 levels) are tiled from a 2048²
mosaic of MoNuSeg tiles (see segment_speed.py). Each run is a fresh process running the slide pipeline
(OME-Zarr labels only, plus one run with GeoJSON and CSV too), so its peak RSS is its own. Also: the
untiled throughput on the 4096² image (whole image in memory, one network pass) and Dask with 1 and 2
local workers: 4 images spread over the workers, and the tiles of one slide spread over them.

Run: `python benchmarks/wsi.py [--sizes 4096,8192,16384] [--backend auto]` → results/wsi.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from common import write_result
from segment_speed import he_mosaic

from phenoseg.inference.slide_pipeline import SLIDE_TILE

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
mode, path = sys.argv[1], sys.argv[2]
from phenoseg.inference.segmenter import Segmenter
t0 = time.perf_counter()
if mode == "tiled":
    from phenoseg.inference.slide_pipeline import SlideOptions, segment_slide
    seg = Segmenter("brightfield_nuclei", device="cpu", backend=sys.argv[4])
    r = segment_slide(path, seg, sys.argv[5], "slide", SlideOptions(progress=False, outputs=sys.argv[6].split(",")))
    out = {"objects": r.n_objects["nuclei"], "tiles": r.tiles, "tiles_skipped": r.tiles_skipped}
else:
    seg = Segmenter("brightfield_nuclei", device="cpu", backend=sys.argv[4])
    r = seg.segment(path, tile_size=10**6)
    out = {"objects": int(r.labels["nuclei"].max())}
out["seconds"] = time.perf_counter() - t0
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


def write_slide(path: Path, size: int, block: np.ndarray, tile: int = 512) -> Path:
    """Pyramidal OME-TIFF of ``size``² px made by repeating ``block``, written tile by tile."""
    def tiles(level: int):
        step = 2**level
        n = size // step
        for y in range(0, n, tile):
            for x in range(0, n, tile):
                ys = (np.arange(y, y + tile) * step) % block.shape[0]
                xs = (np.arange(x, x + tile) * step) % block.shape[1]
                yield block[ys[:, None], xs[None, :]]

    opts = dict(tile=(tile, tile), compression="zlib", photometric="rgb", dtype=np.uint8)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(tiles(0), shape=(size, size, 3), subifds=2,
                 metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}, **opts)
        for level in (1, 2):
            tw.write(tiles(level), shape=(size // 2**level, size // 2**level, 3), subfiletype=1, **opts)
    return path


def run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(line[-1][7:])


def dask_run(files: list[Path], out: Path, workers: int | None, backend: str) -> float:
    cmd = [sys.executable, "-m", "phenoseg", "segment", *map(str, files), "-o", str(out), "--quiet",
           "--outputs", "zarr,csv", "--backend", backend]
    if workers:
        cmd += ["--dask", "--workers", str(workers)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="4096,8192,16384")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="auto", choices=["torch", "onnx", "auto"])
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    block, source = he_mosaic()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in sizes:
            path = write_slide(tmp / f"slide{size}.ome.tif", size, block)
            r = run_child(["tiled", str(path), str(args.threads), args.backend, str(tmp / f"out{size}"), "zarr"])
            r.update(size=size, megapixels=size * size / 1e6, mp_per_s=size * size / 1e6 / r["seconds"])
            rows.append(r)
            print(json.dumps(r), flush=True)
        base = min(sizes)
        full = run_child(["tiled", str(tmp / f"slide{base}.ome.tif"), str(args.threads), args.backend,
                          str(tmp / "full"), "zarr,geojson,csv"])
        full.update(size=base, outputs="zarr,geojson,csv", mp_per_s=base * base / 1e6 / full["seconds"])
        print("all outputs", json.dumps(full), flush=True)
        untiled = run_child(["untiled", str(tmp / f"slide{base}.ome.tif"), str(args.threads), args.backend])
        untiled.update(size=base, mp_per_s=base * base / 1e6 / untiled["seconds"])
        print("untiled", json.dumps(untiled), flush=True)
        dask = {}
        if not args.skip_dask:
            files = [write_slide(tmp / f"fov{i}.ome.tif", 2048, block) for i in range(4)]
            dask = {"images": "4 × 2048² (4.2 MP each), outputs zarr,csv",
                    "no_dask_2_threads_s": dask_run(files, tmp / "d0", None, args.backend),
                    "dask_1_worker_s": dask_run(files, tmp / "d1", 1, args.backend),
                    "dask_2_workers_s": dask_run(files, tmp / "d2", 2, args.backend)}
            dask["speedup_2_vs_1_worker"] = dask["dask_1_worker_s"] / dask["dask_2_workers_s"]
            one = [tmp / f"slide{base}.ome.tif"]
            dask["one_slide"] = f"tiles of one {base}² slide on the workers, outputs zarr,csv"
            dask["one_slide_no_dask_2_threads_s"] = dask_run(one, tmp / "t0", None, args.backend)
            dask["one_slide_dask_1_worker_s"] = dask_run(one, tmp / "t1", 1, args.backend)
            dask["one_slide_dask_2_workers_s"] = dask_run(one, tmp / "t2", 2, args.backend)
            dask["one_slide_speedup_2_vs_1_worker"] = (dask["one_slide_dask_1_worker_s"]
                                                       / dask["one_slide_dask_2_workers_s"])
            print("dask", json.dumps(dask), flush=True)
    small = next(r for r in rows if r["size"] == base)
    big = rows[-1]
    summary = {
        "tiled_vs_untiled_throughput": small["mp_per_s"] / untiled["mp_per_s"],
        "peak_rss_ratio_largest_vs_smallest": big["peak_rss_mb"] / small["peak_rss_mb"],
        "largest_peak_rss_mb": big["peak_rss_mb"],
        "seconds_per_mp": {r["size"]: r["seconds"] / r["megapixels"] for r in rows},
    }
    print(json.dumps(summary, indent=1))
    write_result("wsi", {"source": source, "backend": args.backend, "threads": args.threads,
                         "tile": SLIDE_TILE, "overlap": 80, "outputs": "zarr (labels only) unless stated",
                         "tiled": rows, "tiled_all_outputs": full, "untiled": untiled, "dask": dask, "summary": summary,
                         "bench_process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                         "goals": {"peak_rss_ratio": "<= 1.25", "largest_peak_rss_mb": "< 3072",
                                   "tiled_vs_untiled_throughput": ">= 0.8"}})


if __name__ == "__main__":
    main()
