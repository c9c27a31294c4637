"""Marker positivity on real MIBI cells without annotations: does it obey the lineage logic of the panel?

No shared dataset has cells annotated for positivity, but some calls must agree whatever the tissue: a T cell
(CD3+) or B cell (CD20+) is a leukocyte (CD45+); a CD8+ T cell is CD3+; epithelial cells (pan-keratin+) are
not leukocytes; T and B cells are different cells. Per rule, "containment" P(parent+ | child+) should be
high and "exclusion" P(B+ | A+) low. Scored on phenoseg's cells (``fluorescence_nuclei_and_cells``) of the
two ark MIBI fields (0.5 µm/px assumed) for the positivity model and for Otsu's threshold on each marker's
mean cell intensity (arcsinh-transformed, as cytometry tools do), one threshold per image and marker.

    python benchmarks/positivity_consistency.py [--model marker_positivity]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mibi_ark_examples"
# (kind, A, B): containment → P(B+ | A+) should be high; exclusion → P(B+ | A+) should be low
RULES = {
    "breast_fov8": [("containment", "CD3", "CD45"), ("containment", "CD20", "CD45"),
                    ("containment", "CD8", "CD3"), ("exclusion", "PanKeratin", "CD45"),
                    ("exclusion", "CD45", "PanKeratin"), ("exclusion", "CD3", "CD20")],
    "granuloma_point14": [("containment", "CD3", "CD45"), ("containment", "CD20", "CD45"),
                          ("containment", "CD8", "CD3"), ("exclusion", "Keratin-pan", "CD45"),
                          ("exclusion", "CD3", "CD20"), ("exclusion", "CD20", "CD3")],
}


def otsu_calls(mean: np.ndarray) -> np.ndarray:
    """Otsu's threshold on arcsinh(mean / 5) of one marker → 0/1 per cell."""
    from skimage.filters import threshold_otsu

    x = np.arcsinh(mean / 5.0)
    if np.ptp(x) == 0:
        return np.zeros(len(x), bool)
    return x > threshold_otsu(x)


def rule_scores(calls: dict[str, np.ndarray], rules) -> list[dict]:
    """P(B+ | A+) for every rule, with the number of A+ cells it rests on."""
    out = []
    for kind, a, b in rules:
        pa = calls[a]
        n = int(pa.sum())
        out.append({"rule": f"{kind}: {b}+ given {a}+", "kind": kind, "a_positive": n,
                    "p_b_given_a": float(calls[b][pa].mean()) if n else float("nan")})
    return out


def main() -> None:
    import torch

    from phenoseg.inference.segmenter import Segmenter
    from phenoseg.io.images import read_image
    from phenoseg.models.zoo import load_model
    from phenoseg.phenotype.positivity import PositivityPredictor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="marker_positivity")
    ap.add_argument("--name", default="positivity_consistency")
    args = ap.parse_args()
    torch.set_num_threads(2)
    seg = Segmenter("fluorescence_nuclei_and_cells", device="cpu")
    model = load_model(args.model)
    pred = PositivityPredictor(model)
    fields = {}
    for stem, rules in RULES.items():
        img = read_image(DATA / "images" / f"{stem}.tif")
        names = list(img.channel_names)
        cells = seg.segment(img, 0.5).labels["cells"]
        markers = sorted({m for _, a, b in rules for m in (a, b)})
        idx = [names.index(m) for m in markers]
        data = np.asarray(img.data, np.float32)
        ids, probs = pred.predict(data, cells, 0.5, idx)
        n = int(cells.max()) + 1
        counts = np.maximum(np.bincount(cells.ravel(), minlength=n), 1)
        model_calls = {m: probs[:, j] >= model.config.threshold for j, m in enumerate(markers)}
        otsu = {m: otsu_calls((np.bincount(cells.ravel(), data[i].ravel(), n) / counts)[ids])
                for m, i in zip(markers, idx)}
        fields[stem] = {"cells": int(len(ids)),
                        "positive_fraction": {"model": {m: float(v.mean()) for m, v in model_calls.items()},
                                              "otsu": {m: float(v.mean()) for m, v in otsu.items()}},
                        "model": rule_scores(model_calls, rules), "otsu": rule_scores(otsu, rules)}
        print(stem, fields[stem], flush=True)

    def summary(method: str, kind: str) -> float:
        vals = [r["p_b_given_a"] for f in fields.values() for r in f[method] if r["kind"] == kind]
        return float(np.nanmean(vals))

    means = {m: {"containment": summary(m, "containment"), "exclusion": summary(m, "exclusion")}
             for m in ("model", "otsu")}
    path = write_result(args.name, {"model": args.model, "fields": fields, "mean": means,
                                    "note": "phenoseg cells; MIBI pixel size assumed 0.5 µm/px; containment "
                                            "should be high, exclusion low"})
    md = ["| field | rule | model: P(B+ given A+) (A+ cells) | Otsu on arcsinh mean: P (A+ cells) |",
          "|---|---|---|---|"]
    for stem, f in fields.items():
        for r_m, r_o in zip(f["model"], f["otsu"]):
            md.append(f"| {stem} ({f['cells']:,} cells) | {r_m['rule']} | {r_m['p_b_given_a']:.2f} "
                      f"({r_m['a_positive']}) | {r_o['p_b_given_a']:.2f} ({r_o['a_positive']}) |")
    for m, v in means.items():
        md.append(f"| **mean** | {m}: containment {v['containment']:.2f} ↑, exclusion {v['exclusion']:.2f} ↓ | | |")
    path.with_suffix(".md").write_text("# Marker positivity on real MIBI cells: lineage consistency\n\n"
                                       "`python benchmarks/positivity_consistency.py`\n\n" + "\n".join(md) + "\n")
    print(means)
    print(f"→ {path}")


if __name__ == "__main__":
    main()
