"""Speed of the crop classifier (issue 15): milliseconds per object on this machine, for growing numbers
of objects (linear?), split into crops (scaling, resampling, gathering) and network, ONNX Runtime and torch
side by side (``ms_per_object``: ONNX Runtime, what ``auto`` runs for many objects); with and without TTA;
and the whole ``phenoseg classify`` command (outputs included).

    python benchmarks/classify_speed.py [--model brightfield_nucleus_classes]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, write_result  # noqa: E402

from phenoseg.models.zoo import load_model  # noqa: E402
from phenoseg.phenotype.classify import Classifier  # noqa: E402
from phenoseg.phenotype.crops import object_crops  # noqa: E402
from phenoseg.phenotype.table import object_centroids  # noqa: E402
from phenoseg.synthetic.nuclei import dense_labels, render_image  # noqa: E402

PX = 0.5


def scene(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    labels = dense_labels((size, size), spacing=13.0, seed=seed)
    return render_image(labels, "brightfield", seed=seed), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="brightfield_nucleus_classes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--name", default="classify_speed")
    args = ap.parse_args()
    clf = Classifier(load_model(args.model), backend="torch")
    t0 = time.perf_counter()
    fast = Classifier(load_model(args.model), backend="onnx")
    export_s = time.perf_counter() - t0  # the one-off ONNX export (why auto waits for many objects)
    rows = []
    for size in (512, 1024, 2048):
        image, labels = scene(size)
        n = int(labels.max())
        area, cy, cx = object_centroids(labels)
        ids = np.flatnonzero(area[1:]) + 1

        def crops_only(image=image, labels=labels, ids=ids, cy=cy, cx=cx):
            for _ in object_crops(image, labels, ids, cy[ids], cx[ids], PX, clf.config, clf.batch):
                pass

        whole, _ = median_time(lambda image=image, labels=labels: clf.predict(image, labels, PX), args.repeats)
        onnx, _ = median_time(lambda image=image, labels=labels: fast.predict(image, labels, PX), args.repeats)
        crop_s, _ = median_time(crops_only, args.repeats)
        rows.append({"size": size, "objects": n, "torch_seconds": whole, "onnx_seconds": onnx,
                     "ms_per_object": 1e3 * onnx / n, "torch_ms_per_object": 1e3 * whole / n,
                     "crops_ms_per_object": 1e3 * crop_s / n, "network_ms_per_object": 1e3 * (onnx - crop_s) / n,
                     "torch_network_ms_per_object": 1e3 * (whole - crop_s) / n})
        print(rows[-1], flush=True)
    image, labels = scene(1024, 1)
    n = int(labels.max())
    tta = Classifier(load_model(args.model), tta=True, backend="onnx")
    tta_s, _ = median_time(lambda: tta.predict(image, labels, PX), 1)
    with tempfile.TemporaryDirectory() as tmp:
        tifffile.imwrite(f"{tmp}/im.tif", np.moveaxis(image, 0, -1), photometric="rgb")
        tifffile.imwrite(f"{tmp}/lab.tif", labels.astype(np.uint32))
        cmd = [sys.executable, "-m", "phenoseg", "classify", f"{tmp}/im.tif", "--nuclei", f"{tmp}/lab.tif", "--model",
               args.model, "--pixel-size", str(PX), "-o", f"{tmp}/out", "--outputs", "geojson,csv", "--quiet"]
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            subprocess.run(cmd, check=True)
            times.append(time.perf_counter() - t)
    command = {"size": 1024, "objects": n, "seconds_median": float(np.median(times)), "seconds": times}
    ratio = rows[-1]["ms_per_object"] / rows[0]["ms_per_object"]
    out = write_result(args.name, {
        "model": args.model, "pixel_size_um": PX, "onnx_export_seconds": export_s, "in_process": rows,
        "linearity": {"ms_per_object_largest_over_smallest": ratio},
        "tta": {"size": 1024, "objects": n, "ms_per_object": 1e3 * tta_s / n},
        "command_classify_geojson_csv": command,
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
