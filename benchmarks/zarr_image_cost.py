"""What the root image of a slide's OME-Zarr costs (the NGFF image that napari-ome-zarr, ``ome_zarr`` and
validators open, with the labels under it): bytes on disk per model-grid pixel and seconds, for a 4096²
H&E mosaic at 0.5 µm/px with ``outputs=["zarr"]``. The write and pyramid times are measured inside the
same run as the whole. Run: `python benchmarks/zarr_image_cost.py` → results/zarr_image_cost.json
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from common import machine, write_result
from segment_speed import he_mosaic
from wsi import write_slide

import phenoseg.io.omezarr as omezarr
from phenoseg.inference.segmenter import Segmenter
from phenoseg.inference.slide_pipeline import SlideOptions, segment_slide


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    torch.set_num_threads(2)
    spent = {"write": 0.0, "finish": 0.0}
    write, finish = omezarr.ImageWriter.write, omezarr.ImageWriter.finish

    def timed_write(self, *args):
        t = time.perf_counter()
        write(self, *args)
        spent["write"] += time.perf_counter() - t

    def timed_finish(self, *args, **kwargs):
        t = time.perf_counter()
        out = finish(self, *args, **kwargs)
        spent["finish"] += time.perf_counter() - t
        return out

    omezarr.ImageWriter.write, omezarr.ImageWriter.finish = timed_write, timed_finish
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        size = 4096
        path = write_slide(tmp / "slide.ome.tif", size, he_mosaic()[0])
        t = time.perf_counter()
        res = segment_slide(path, Segmenter("brightfield_nuclei", device="cpu"), tmp / "out", "slide",
                            SlideOptions(progress=False, outputs=["zarr"]))
        seconds = time.perf_counter() - t
        root = tmp / "out" / "slide.ome.zarr"
        image = sum(folder_bytes(p) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
        labels = folder_bytes(root / "labels")
    px = size * size
    out = {"machine": machine(), "image": f"{size}² H&E mosaic, RGB uint8, 0.5 µm/px", "objects": res.n_objects,
           "seconds_total": round(seconds, 1), "seconds_image_write": round(spent["write"], 2),
           "seconds_image_pyramid": round(spent["finish"], 2), "image_bytes": image, "labels_bytes": labels,
           "image_bytes_per_model_pixel": round(image / px, 3), "labels_bytes_per_model_pixel": round(labels / px, 3)}
    print(out)
    print(write_result("zarr_image_cost", out))


if __name__ == "__main__":
    main()
