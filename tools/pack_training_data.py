"""Copy datasets in the manifest layout, resampled once to a model's pixel size (smaller, faster to load).

Used to carry training data to a GPU machine: images are written as 8-bit PNG and labels as zlib TIFF at
the target pixel size, and the new manifest records that pixel size for every image.

    python tools/pack_training_data.py OUT_DIR DATASET_DIR... --pixel-size 0.5 \
        --data-pixel-size dsb2018_brightfield=0.3 [--channels 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from phenoseg.io.datasets import TARGET_LABEL_DIRS, find_image_file, image_pixel_size, load_manifest
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels
from phenoseg.preprocess import resample_image, resize_labels


def pack(root: Path, out: Path, pixel_size: float, override: float | None, channels: int | None) -> int:
    """Write ``root`` resampled into ``out``; returns the number of images written."""
    manifest = load_manifest(root)
    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    folders = [f for dirs in TARGET_LABEL_DIRS.values() for f in dirs if (root / f).is_dir()]
    for f in folders:
        (out / f).mkdir(exist_ok=True)
    split, images = {}, {}
    for image_id, part in manifest["split"].items():
        lab_paths = [root / f / f"{image_id}.tif" for f in folders if (root / f / f"{image_id}.tif").is_file()]
        if not lab_paths:
            continue
        img = read_image(find_image_file(root, image_id)).data
        if channels is not None and img.shape[0] != channels:
            continue
        px = image_pixel_size(manifest, image_id, override)
        if not px:
            raise SystemExit(f"{root.name}: no pixel size; pass --data-pixel-size {root.name}=UM")
        small = resample_image(img.astype(np.float32), px / pixel_size)
        u8 = np.clip(np.rint(small), 0, 255).astype(np.uint8)
        Image.fromarray(np.moveaxis(u8, 0, -1) if u8.shape[0] == 3 else u8[0]).save(out / "images" / f"{image_id}.png")
        for lab_path in lab_paths:
            labels = resize_labels(read_labels(lab_path).astype(np.int32), u8.shape[-2:])
            tifffile.imwrite(out / lab_path.parent.name / lab_path.name, labels.astype(np.uint16), compression="zlib")
        split[image_id] = part
        images[image_id] = {"pixel_size_um": pixel_size, "source_pixel_size_um": px}
    new = {k: v for k, v in manifest.items() if k not in ("split", "images")}
    new.update(split=split, images=images, pixel_size_um=pixel_size,
               packed_from=str(root), notes=f"resampled to {pixel_size} µm/px by tools/pack_training_data.py")
    (out / "manifest.json").write_text(json.dumps(new, indent=1))
    return len(split)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--pixel-size", type=float, default=0.5)
    ap.add_argument("--data-pixel-size", nargs="*", default=[], metavar="NAME=UM")
    ap.add_argument("--channels", type=int, help="keep only images with this many channels")
    a = ap.parse_args()
    overrides = {k: float(v) for k, v in (x.split("=", 1) for x in a.data_pixel_size)}
    for d in a.datasets:
        root = Path(d)
        n = pack(root, Path(a.out) / root.name, a.pixel_size, overrides.get(root.name), a.channels)
        print(f"{root.name}: {n} images")


if __name__ == "__main__":
    main()
