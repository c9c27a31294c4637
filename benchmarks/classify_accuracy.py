"""Accuracy of crop classifiers (issue 15) on a dataset's val split, through the path of
``phenoseg segment --classify``: HoVer-Net's F_d / F_c with the bundled segmenter's objects, per detection
filter (the precision–recall curve of the segmentation, F1@0.5 before / after), the classifier alone on the
annotated masks, FROC per class; for point-annotated sets also a nearest-centroid baseline on the same
objects (mean colour, size, shape features; centroids from the train split).

    python benchmarks/classify_accuracy.py --model brightfield_nucleus_classes --data ../shared/data/consep_patches
    python benchmarks/classify_accuracy.py --model runs/classifier_brca --data ../shared/data/brca_m2c --baseline
    python benchmarks/classify_accuracy.py --model runs/classifier_gold runs/classifier_silver --name silver
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from phenoseg.evaluation.classify_dataset import ImagePredictions, predict_dataset, score_dataset  # noqa: E402
from phenoseg.io.datasets import find_image_file, image_pixel_size, load_manifest  # noqa: E402
from phenoseg.io.images import read_image  # noqa: E402
from phenoseg.phenotype.classify import load_classifier  # noqa: E402
from phenoseg.phenotype.morphology import morphology  # noqa: E402
from phenoseg.training.classifier.data import class_index, class_key, points_file, read_points  # noqa: E402
from phenoseg.training.classifier.train import segment_function  # noqa: E402

HOVERNET = {"f_d": 0.748, "f_c": {"epithelial": 0.635, "inflammatory": 0.631, "spindle": 0.566, "other": 0.426}}


def cached(segment):
    """The segmenter, run once per image across models."""
    memo: dict[str, np.ndarray] = {}

    def run(data: np.ndarray, px: float) -> np.ndarray:
        key = hashlib.sha1(np.ascontiguousarray(data).tobytes()).hexdigest() + f"{px:.4f}"
        if key not in memo:
            memo[key] = segment(data, px)
        return memo[key]
    return run


def features(image: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per object: mean and s.d. of each channel inside it, log area, eccentricity, solidity."""
    idx = ids.tolist()
    cols = []
    for ch in image.astype(np.float64):
        cols.append(np.asarray(ndimage.mean(ch, labels, idx)))
        cols.append(np.sqrt(np.maximum(np.asarray(ndimage.variance(ch, labels, idx)), 0)))
    m = morphology(labels)
    rows = ids - 1
    cols += [np.log1p(m["area"][rows]), m["eccentricity"][rows], m["solidity"][rows]]
    return np.nan_to_num(np.stack(cols, 1))


def point_classes(root: Path, image_id: str, labels: np.ndarray, ids: np.ndarray, index: dict) -> np.ndarray:
    """Each object's class from the point inside it ("other" where none)."""
    gold = np.full(int(labels.max(initial=0)) + 1, index.get("other", -1), np.int64)
    for x, y, c in read_points(points_file(root, image_id)):
        yi, xi = int(round(y)), int(round(x))
        if 0 <= yi < labels.shape[0] and 0 <= xi < labels.shape[1] and labels[yi, xi]:
            gold[labels[yi, xi]] = index.get(class_key(c), -1)
    return gold[ids]


def nearest_centroid(root: Path, classes: list[str], segment, val: list[ImagePredictions]) -> list[ImagePredictions]:
    """The baseline: z-scored features, one centroid per class from the train split's objects; each val object
    takes its nearest centroid's class (one-hot probabilities, detection 1)."""
    manifest = load_manifest(root)
    index = class_index(classes)
    xs, ys = [], []
    for image_id in sorted(i for i, s in manifest["split"].items() if s == "train"):
        img = read_image(find_image_file(root, image_id))
        px = image_pixel_size(manifest, image_id, None) or 0.5
        labels = segment(img.data, px)
        ids = np.unique(labels)[1:]
        if ids.size:
            xs.append(features(img.data, labels, ids))
            ys.append(point_classes(root, image_id, labels, ids, index))
    x, y = np.concatenate(xs), np.concatenate(ys)
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    present = [c for c in range(len(classes)) if (y == c).any()]
    centres = np.stack([z[y == c].mean(0) for c in present])
    out = []
    for im in val:
        img = read_image(find_image_file(root, im.image_id))
        f = np.zeros((0, z.shape[1]))
        if im.pred_ids.size:
            f = (features(img.data, im.pred_labels, im.pred_ids) - mu) / sd
        d = ((f[:, None, :] - centres[None]) ** 2).sum(-1)
        probs = np.zeros((len(f), len(classes)))
        if len(f):
            probs[np.arange(len(f)), np.asarray(present)[d.argmin(1)]] = 1.0
        out.append(ImagePredictions(im.image_id, im.pixel_size_um, im.area_mm2, im.true_xy, im.true_cls, im.pred_ids,
                                    im.pred_xy, probs, np.ones(len(f)), im.pred_labels, None, None))
    return out


def summary(result: dict) -> dict:
    """The headline numbers: no filter, and the filter with the best F_d."""
    best = max(result["filters"], key=lambda k: result["filters"][k]["f_d"])
    pick = lambda k: {m: result["filters"][k].get(m) for m in  # noqa: E731
                      ("f_d", "f_c", "f_c_mean", "segmentation_f1@0.5", "precision@0.5", "recall@0.5")}
    return {"unfiltered": pick("none"), "best_filter": best, "at_best_filter": pick(best),
            "froc_mean": result.get("froc_mean"),
            "annotated_masks_macro_f1": result.get("annotated_masks", {}).get("macro_f1")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["brightfield_nucleus_classes"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/consep_patches"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--segmenter", default="brightfield_nuclei")
    ap.add_argument("--seed-threshold", type=float, nargs="+", default=[None])
    ap.add_argument("--baseline", action="store_true", help="also the nearest-centroid baseline (point sets)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--name", default="classify_accuracy")
    args = ap.parse_args()
    runs = {}
    for seed in args.seed_threshold:
        segment = cached(segment_function(args.segmenter, seed))
        for name in args.model:
            clf = load_classifier(name)
            images = predict_dataset(clf, args.data, args.split, segment, args.limit)
            result = score_dataset(images, list(clf.config.classes))
            key = f"{name} seed={seed}"
            runs[key] = {"model": name, "seed_threshold": seed, "summary": summary(result), "scores": result}
            print(key, runs[key]["summary"], flush=True)
        if args.baseline:
            base = nearest_centroid(args.data, list(clf.config.classes), segment, images)
            result = score_dataset(base, list(clf.config.classes), (None,))
            runs[f"nearest-centroid seed={seed}"] = {"model": "nearest-centroid", "seed_threshold": seed,
                                                     "summary": summary(result), "scores": result}
            print("nearest-centroid", runs[f"nearest-centroid seed={seed}"]["summary"], flush=True)
    out = write_result(args.name, {"data": str(args.data), "split": args.split, "segmenter": args.segmenter,
                                   "hovernet_consep_test": HOVERNET, "runs": runs})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
