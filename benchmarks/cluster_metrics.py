"""Label-free clustering metrics (issue 16, method §4) of three segmentations of the shared multiplexed images.

For each MIBI-TOF field (ark examples; pixel size unknown, 0.5 µm/px assumed as in channelnet_accuracy.py) and
each IMC crop (cytomapper pancreas, 1 µm/px): phenoseg's cells (``fluorescence_nuclei_and_cells`` on all
channels, the default a user gets), phenoseg's nuclei expanded by 3 µm (QuPath's / MCMICRO's cell expansion)
and the dataset's own algorithmic masks (DeepCell / CellProfiler). Per cell the mean of every marker channel
(elemental and background channels left out), then z-score → kNN graph (k = 15) → Leiden at 0.05 / 0.10 / 0.15
→ Davies–Bouldin (lower better), Silhouette and Calinski–Harabasz (higher better), averaged over resolutions.
No ground truth is involved; the scores also depend on how many cells a segmentation has (CH grows with it),
so the cell counts are reported beside them.

    python benchmarks/cluster_metrics.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from skimage.segmentation import expand_labels

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from phenoseg.evaluation.cluster_metrics import METRICS, image_metrics  # noqa: E402
from phenoseg.inference.segmenter import Segmenter  # noqa: E402
from phenoseg.io.images import read_image  # noqa: E402
from phenoseg.io.labels import read_labels  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NOT_MARKERS = {"Au", "Background", "C", "Na", "Si", "Ta"}
EXPANSION_UM = 3.0


def mean_intensities(image: np.ndarray, labels: np.ndarray, keep: list[int]) -> np.ndarray:
    """(cells, channels) mean of the ``keep`` channels over each labelled object (empty ids dropped)."""
    flat = labels.ravel()
    n = int(flat.max()) + 1
    counts = np.bincount(flat, minlength=n)
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    cols = [np.bincount(flat, image[c].ravel().astype(np.float64), minlength=n)[ids] / counts[ids] for c in keep]
    return np.stack(cols, 1)


def fields() -> list[tuple[str, list[tuple[Path, Path]], float, str]]:
    """(name, [(image, own mask)], pixel size, who made the masks) of every shared multiplexed field; the three
    100 × 100 px IMC crops (one panel, ~40 cells each: too few to cluster alone) are pooled into one."""
    mibi = DATA / "mibi_ark_examples"
    out = [(f"mibi/{f.stem}", [(f, mibi / "labels_cells" / f.name)], 0.5, "DeepCell")
           for f in sorted((mibi / "images").glob("*.tif"))]
    imc = DATA / "imc_pancreas_cytomapper"
    crops = [(f, imc / "labels_cells" / f.name) for f in sorted((imc / "images").glob("*.tif"))]
    if crops:
        out.append(("imc/pancreas (3 crops pooled)", crops, 1.0, "CellProfiler"))
    return out


def main() -> None:
    import torch

    torch.set_num_threads(2)
    seg = Segmenter("fluorescence_nuclei_and_cells", device="cpu")
    rows: dict = {}
    for name, parts, px, source in fields():
        per: dict[str, list[np.ndarray]] = {}
        for path, own_path in parts:
            img = read_image(path)
            data = np.asarray(img.data, np.float32)
            names = list(img.channel_names or [f"Channel {i + 1}" for i in range(data.shape[0])])
            keep = [i for i, c in enumerate(names) if c not in NOT_MARKERS]
            r = seg.segment(img, px)
            masks = {"phenoseg cells": r.labels["cells"],
                     f"phenoseg nuclei + {EXPANSION_UM:g} µm": expand_labels(r.labels["nuclei"], EXPANSION_UM / px),
                     "dataset masks": read_labels(own_path)}
            for label, lab in masks.items():
                per.setdefault(label, []).append(mean_intensities(data, np.asarray(lab), keep))
        rows[name] = {"channels": len(keep), "pixel_size_um": px, "dataset_masks": source, "segmentations": {}}
        for label, tables in per.items():
            m = image_metrics(np.concatenate(tables))
            rows[name]["segmentations"][label] = {"cells": m["cells"], **m["mean"]}
            print(name, label, m["cells"], {k: round(v, 3) for k, v in m["mean"].items()}, flush=True)
    labels = list(next(iter(rows.values()))["segmentations"])
    mean = {lab: {k: float(np.nanmean([v["segmentations"][lab][k] for v in rows.values()])) for k in METRICS}
            for lab in labels}
    path = write_result("cluster_metrics", {"fields": rows, "mean_over_fields": mean, "neighbours": 15,
                                            "resolutions": [0.05, 0.10, 0.15],
                                            "note": "MIBI pixel size assumed 0.5 µm/px; dataset masks are "
                                                    "algorithmic, not ground truth"})
    md = ["| field | segmentation | cells | Davies–Bouldin ↓ | Silhouette ↑ | Calinski–Harabasz ↑ |",
          "|---|---|---|---|---|---|"]
    for name, v in rows.items():
        for lab, s in v["segmentations"].items():
            what = f"{lab} ({v['dataset_masks']})" if lab == "dataset masks" else lab
            md.append(f"| {name} | {what} | {s['cells']:,} | {s['davies_bouldin']:.3f} | {s['silhouette']:.3f} | "
                      f"{s['calinski_harabasz']:.1f} |")
    for lab, s in mean.items():
        md.append(f"| **mean** | {lab} | | {s['davies_bouldin']:.3f} | {s['silhouette']:.3f} | "
                  f"{s['calinski_harabasz']:.1f} |")
    path.with_suffix(".md").write_text("# Label-free clustering metrics of three segmentations\n\n"
                                       "`python benchmarks/cluster_metrics.py`\n\n" + "\n".join(md) + "\n")
    print(json.dumps(mean, indent=1))
    print(f"→ {path}")


if __name__ == "__main__":
    main()
