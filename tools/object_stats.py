"""Write each bundled model's ``object_stats`` (config.json): the percentiles of object areas and image
densities of its training data, which `segment` compares results with (phenoseg.inference.plausibility).

Usage: python tools/object_stats.py [--data ../shared/data]   (the models' training datasets, train split)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from phenoseg.inference.plausibility import object_statistics
from phenoseg.io.datasets import image_pixel_size, load_manifest
from phenoseg.io.labels import read_labels
from phenoseg.models.zoo import ZOO_DIR

# pixel sizes of datasets whose manifest has none, as the models were trained (their model cards)
ASSUMED = {"dsb2018_brightfield": 0.3, "dsb2018_fluo": 0.5}


def label_maps(root: Path):
    """(labels, µm/px) of a dataset's train split."""
    manifest = load_manifest(root)
    for image_id, split in sorted(manifest["split"].items()):
        if split == "train":
            px = image_pixel_size(manifest, image_id, None) or ASSUMED.get(root.name)
            yield read_labels(root / "labels" / f"{image_id}.tif"), px


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    for config_path in sorted(ZOO_DIR.glob("*/config.json")):
        config = json.loads(config_path.read_text())
        maps = [m for d in config["training"]["datasets"] for m in label_maps(Path(args.data) / d)]
        stats = object_statistics(maps)
        config["object_stats"] = {t: stats for t in config.get("targets", ["nuclei"])}
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        print(config_path.parent.name, stats)


if __name__ == "__main__":
    main()
