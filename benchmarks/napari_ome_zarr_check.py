"""Does napari-ome-zarr open a slide's OME-Zarr (the image at the root, the labels under it)?

napari is not a phenoseg dependency, so the reader runs in another environment given by
``--napari-python`` (one with ``napari`` and ``napari-ome-zarr``, e.g. made by
`python3 -m venv /tmp/napenv && /tmp/napenv/bin/pip install napari napari-ome-zarr`); it is run headless
(the reader plugin, no viewer window). The slide is a 700 × 900 tiling of the bundled H&E example at 0.5 µm/px.
Run: `python benchmarks/napari_ome_zarr_check.py --napari-python /tmp/napenv/bin/python`
→ results/napari_ome_zarr_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from common import write_result

from phenoseg.inference.segmenter import Segmenter
from phenoseg.inference.slide_pipeline import SlideOptions, segment_slide
from phenoseg.io.images import read_image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "he_dsb2018.tif"
READER = r"""
import json, sys
import napari, napari_ome_zarr
from importlib.metadata import version
from napari_ome_zarr._reader import napari_get_reader
path = sys.argv[1]
reader = napari_get_reader(path)
layers = [] if reader is None else reader(path)
print("RESULT " + json.dumps({
    "napari": napari.__version__, "napari_ome_zarr": version("napari-ome-zarr"),
    "reader_found": reader is not None,
    "layers": [{"kind": kind, "shapes": [list(d.shape) for d in data], "name": meta.get("name"),
                "scale": list(meta.get("scale", []))} for data, meta, kind in layers]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--napari-python", required=True, help="python of an environment with napari-ome-zarr")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        he = np.moveaxis(read_image(EXAMPLE).data, 0, -1)
        tifffile.imwrite(tmp / "he.ome.tif", np.tile(he, (3, 3, 1))[:700, :900], photometric="rgb",
                         metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
        segment_slide(tmp / "he.ome.tif", Segmenter("brightfield_nuclei", device="cpu"), tmp / "out", "he",
                      SlideOptions(tile=256, progress=False, tissue_mask=False, outputs=["zarr"]))
        (tmp / "reader.py").write_text(READER)
        proc = subprocess.run([args.napari_python, str(tmp / "reader.py"), str(tmp / "out" / "he.ome.zarr")],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"the reader failed:\n{proc.stderr[-2000:]}")
    out = json.loads(line[7:])
    kinds = [layer["kind"] for layer in out["layers"]]
    out["passed"] = bool(out["reader_found"] and "image" in kinds and "labels" in kinds)
    print(out)
    print(write_result("napari_ome_zarr_check", out))
    if not out["passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
