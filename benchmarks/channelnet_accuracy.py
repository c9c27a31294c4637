"""Accuracy of the ChannelNet nuclei + cells model (issue 14):

1. held-out synthetic multiplexed images grown from the *val* nucleus maps, (a) inside the generator's training
   ranges and (b) outside them (more channels, more blur, fewer photons, larger cells, thicker membranes);
   nuclei and cells F1@0.5 / F1^μ against the baseline every pipeline without a cell model uses: the same
   nuclei expanded by a fixed distance (QuPath's cell expansion; MCMICRO), at 2, 3 and 5 µm;
2. accuracy vs the number of channels given (random subsets, always with the nuclear channel, repeats);
3. agreement with the DeepCell masks of the MIBI examples (machine masks, not ground truth), with an overlay;
4. agreement with the CellProfiler whole-cell masks of the IMC pancreas examples (train and val crops only; the
   test crop is left alone), against the same nucleus-expansion baseline.

    python benchmarks/channelnet_accuracy.py [--model fluorescence_nuclei_and_cells] [--images 12]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from skimage.segmentation import expand_labels

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise  # noqa: E402
from phenoseg.inference.segmenter import Segmenter  # noqa: E402
from phenoseg.synthetic.multiplex import MultiplexSettings, render_multiplex  # noqa: E402
from phenoseg.training.multiplex import crop_map, nucleus_maps  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NUCLEUS_SETS = ["monuseg", "cpm15", "consep_patches", "dsb2018_fluo", "coelho2009_fluo"]
OVERRIDES = {"dsb2018_fluo": 0.5, "coelho2009_fluo": 0.48}
PX = 0.5
EXPANSIONS_UM = (2.0, 3.0, 5.0)
SHIFTED = MultiplexSettings(channels=(12, 30), cell_distance=(14.0, 18.0), blur=(1.6, 2.2), photons=(5.0, 15.0),
                            membrane_width=(2.5, 3.5), background=(0.25, 0.4), irregularity=(4.0, 6.0))


def _summary(c: MatchCounts) -> dict:
    s = summarise(c)
    return {k: round(float(s[k]), 4) for k in ("f1@0.5", "f1_mean", "pq")} | {"n_true": int(s["n_true"]),
                                                                            "n_pred": int(s["n_pred"])}


def held_out(seg: Segmenter, maps, settings: MultiplexSettings, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    counts = {k: MatchCounts() for k in ["nuclei", "cells"] + [f"cells_expanded_{d:g}um" for d in EXPANSIONS_UM]}
    channels = []
    for _ in range(n):
        s = render_multiplex(crop_map(maps, 256, rng), rng, settings)
        channels.append(s.image.shape[0])
        r = seg.segment(s.image, PX)
        counts["nuclei"] += match_counts(s.nuclei, r.labels["nuclei"])
        counts["cells"] += match_counts(s.cells, r.labels["cells"])
        for d in EXPANSIONS_UM:
            counts[f"cells_expanded_{d:g}um"] += match_counts(s.cells, expand_labels(r.labels["nuclei"], d / PX))
    return {"images": n, "channels_min_max": [min(channels), max(channels)],
            **{k: _summary(v) for k, v in counts.items()}}


def channel_curve(seg: Segmenter, maps, n: int, repeats: int, seed: int, total: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    sizes = [k for k in (1, 2, 4, 8, 16) if k <= total]
    counts = {k: {"nuclei": MatchCounts(), "cells": MatchCounts()} for k in sizes}
    for _ in range(n):
        s = render_multiplex(crop_map(maps, 256, rng), rng, MultiplexSettings(), total)
        nuclear = s.kinds.index("nuclear")
        others = [i for i in range(total) if i != nuclear]
        for k in sizes:
            for _ in range(repeats if k < total else 1):
                pick = [nuclear] + list(rng.choice(others, k - 1, replace=False))
                r = seg.segment(s.image[sorted(pick)], PX)
                counts[k]["nuclei"] += match_counts(s.nuclei, r.labels["nuclei"])
                counts[k]["cells"] += match_counts(s.cells, r.labels["cells"])
    return {"images": n, "repeats": repeats,
            "by_channels": {str(k): {t: _summary(c) for t, c in v.items()} for k, v in counts.items()}}


def mibi(seg: Segmenter, overlay_path: Path | None) -> dict:
    from phenoseg.io.images import read_image
    from phenoseg.io.labels import read_labels

    root = DATA / "mibi_ark_examples"
    out = {}
    for f in sorted((root / "images").glob("*.tif")):
        img = read_image(f)
        r = seg.segment(img, PX)
        entry = {"channels": img.data.shape[0], "pixel_size_assumed_um": PX}
        truth_cells = read_labels(root / "labels_cells" / f.name)
        entry["cells_vs_deepcell"] = _summary(match_counts(truth_cells, r.labels["cells"]))
        entry["cells_expanded_3um_vs_deepcell"] = _summary(
            match_counts(truth_cells, expand_labels(r.labels["nuclei"], 3.0 / PX)))
        nuc_file = root / "labels_nuclei" / f.name
        if nuc_file.is_file():
            entry["nuclei_vs_deepcell"] = _summary(match_counts(read_labels(nuc_file), r.labels["nuclei"]))
        out[f.stem] = entry
        if overlay_path is not None and f.stem == "breast_fov8":
            _overlay(img, r.labels["cells"], truth_cells, overlay_path)
    return out


def mibi_pixel_sizes(models: list[str], sizes: tuple[float, ...] = (0.5, 0.35, 0.25)) -> dict:
    """Cells vs DeepCell on the MIBI examples when their (unknown) pixel size is assumed to be each of
    ``sizes``: how sensitive each model is to a wrong pixel size."""
    from phenoseg.io.images import read_image
    from phenoseg.io.labels import read_labels

    root = DATA / "mibi_ark_examples"
    out: dict = {}
    for f in sorted((root / "images").glob("*.tif")):
        img, truth = read_image(f), read_labels(root / "labels_cells" / f.name)
        for m in models:
            seg = Segmenter(m, device="cpu")
            for px in sizes:
                r = seg.segment(img, px)
                out.setdefault(f.stem, {}).setdefault(Path(m).name, {})[str(px)] = _summary(
                    match_counts(truth, r.labels["cells"]))
    return out


def imc(seg: Segmenter) -> dict:
    """Cells vs the CellProfiler masks of the cytomapper IMC crops (1 µm/px, 5 channels, H3 nuclear)."""
    import json

    from phenoseg.io.images import read_image
    from phenoseg.io.labels import read_labels

    root = DATA / "imc_pancreas_cytomapper"
    split = json.loads((root / "manifest.json").read_text())["split"]
    out, pooled, pooled_exp = {}, MatchCounts(), MatchCounts()
    for stem in sorted(k for k, v in split.items() if v in ("train", "val")):
        img = read_image(root / "images" / f"{stem}.tif")
        r = seg.segment(img, 1.0)
        truth = read_labels(root / "labels_cells" / f"{stem}.tif")
        c = match_counts(truth, r.labels["cells"])
        e = match_counts(truth, expand_labels(r.labels["nuclei"], 3.0))  # 3 µm at 1 µm/px
        pooled, pooled_exp = pooled + c, pooled_exp + e
        out[stem] = {"split": split[stem], "cells_vs_cellprofiler": _summary(c),
                     "cells_expanded_3um_vs_cellprofiler": _summary(e)}
    out["pooled"] = {"cells_vs_cellprofiler": _summary(pooled),
                     "cells_expanded_3um_vs_cellprofiler": _summary(pooled_exp)}
    return out


def _overlay(img, cells: np.ndarray, truth: np.ndarray, path: Path) -> None:
    """Composite (nuclear blue, membrane grey) with phenoseg cells (yellow) and DeepCell's (magenta); a crop."""
    from PIL import Image as PILImage
    from skimage.segmentation import find_boundaries

    names = [n.lower() for n in img.channel_names]

    def chan(name: str) -> np.ndarray:
        c = img.data[names.index(name)].astype(np.float32)
        hi = np.percentile(c, 99.5) or 1.0
        return np.clip(c / hi, 0, 1)

    nuc, mem = chan("hh3"), chan("membrane")
    rgb = np.stack([mem * 0.8, mem * 0.8, np.clip(mem * 0.8 + nuc, 0, 1)], -1)
    rgb[find_boundaries(truth, mode="inner")] = (1.0, 0.0, 1.0)
    rgb[find_boundaries(cells, mode="inner")] = (1.0, 1.0, 0.0)
    crop = rgb[256:768, 256:768]
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray((crop * 255).astype(np.uint8)).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fluorescence_nuclei_and_cells")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--curve-images", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--name", default="channelnet_accuracy")
    ap.add_argument("--pixel-size-sweep", nargs="+", metavar="MODEL",
                    help="only: cells vs DeepCell on the MIBI examples at assumed pixel sizes 0.5 / 0.35 / 0.25 for "
                         "these models (→ results/channelnet_mibi_pixel_sizes.json)")
    args = ap.parse_args()
    if args.pixel_size_sweep:
        sweep = mibi_pixel_sizes(args.pixel_size_sweep)
        payload = {"models": args.pixel_size_sweep, "cells_vs_deepcell": sweep}
        print(write_result("channelnet_mibi_pixel_sizes", payload))
        return
    seg = Segmenter(args.model, device="cpu")
    roots = [str(DATA / d) for d in NUCLEUS_SETS]
    maps = nucleus_maps(roots, "val", PX, OVERRIDES)
    result = {
        "model": args.model, "val_nucleus_maps": len(maps),
        "held_out_in_range": held_out(seg, maps, MultiplexSettings(channels=(2, 8)), args.images, 11),
        "held_out_shifted": held_out(seg, maps, SHIFTED, args.images, 12),
        "shifted_settings": {k: v for k, v in vars(SHIFTED).items() if k != "kind_weights"},
        "channel_curve": channel_curve(seg, maps, args.curve_images, args.repeats, 13),
        "mibi_vs_deepcell": mibi(seg, Path(__file__).resolve().parents[1] / "docs" / "images" / "channelnet_mibi.png"),
        "imc_vs_cellprofiler": imc(seg),
    }
    print(write_result(args.name, result))
    for key in ("held_out_in_range", "held_out_shifted"):
        h = result[key]
        print(key, {k: (v["f1@0.5"], v["f1_mean"]) for k, v in h.items() if isinstance(v, dict)})
    print("channels", {k: v["cells"]["f1_mean"] for k, v in result["channel_curve"]["by_channels"].items()})
    print("mibi", result["mibi_vs_deepcell"])
    print("imc", result["imc_vs_cellprofiler"]["pooled"])


if __name__ == "__main__":
    main()
