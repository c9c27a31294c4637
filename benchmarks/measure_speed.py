"""Measuring ~100,000 objects on a 4096×4096 image with 4 channels: time and peak memory.

Labels are synthetic touching blobs (phenoseg.synthetic.dense_labels); intensities are random uint16.
Run: `python benchmarks/measure_speed.py` → results/measure_speed.json
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from common import write_result

from phenoseg.phenotype.intensity import intensity_stats
from phenoseg.phenotype.measurements import measure
from phenoseg.phenotype.morphology import morphology
from phenoseg.synthetic import dense_labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--channels", type=int, default=4)
    args = parser.parse_args()
    labels = dense_labels((args.size, args.size), spacing=12.9, seed=0)
    image = np.random.default_rng(0).integers(0, 4000, (args.channels, args.size, args.size), dtype=np.uint16)
    n = int(labels.max())
    t = time.perf_counter()
    morphology(labels)
    t_morph = time.perf_counter() - t
    t = time.perf_counter()
    intensity_stats(labels, image, n)
    t_int = time.perf_counter() - t
    tracemalloc.start()
    t = time.perf_counter()
    m = measure(image, labels, pixel_size_um=0.5)
    total = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cols = m.qupath_columns()
    payload = {
        "size": args.size, "channels": args.channels, "objects": n, "columns": len(cols),
        "measure_s": round(total, 2), "morphology_s": round(t_morph, 2), "intensity_s": round(t_int, 2),
        "peak_python_heap_mb": round(peak / 2**20, 1),
        "input_mb": round((labels.nbytes + image.nbytes) / 2**20, 1),
        "goal_s": 10.0,
    }
    print(payload)
    print("wrote", write_result("measure_speed", payload))


if __name__ == "__main__":
    main()
