"""A classifier scored on a dataset split, through the same path as ``phenoseg segment --classify``: the
segmenter's objects classified on each image, then HoVer-Net's F_d / F_c, the segmentation's F1@0.5 before
and after a detection-probability filter (images with instance labels), the classifier alone on the
annotated masks, and FROC per class (point annotations)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phenoseg.evaluation.classification import classification_report, froc, hovernet_scores
from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise
from phenoseg.io.datasets import find_image_file, image_pixel_size, label_file, load_manifest
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels
from phenoseg.phenotype.table import object_centroids
from phenoseg.training.classifier.data import PAIR_RADIUS_UM, class_index, class_key, points_file, read_points

FILTERS = (None, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FROC_RADIUS_UM = 4.0


@dataclass
class ImagePredictions:
    """One image: annotated positions and classes, the segmenter's objects and their predictions."""

    image_id: str
    pixel_size_um: float
    area_mm2: float
    true_xy: np.ndarray
    true_cls: np.ndarray
    pred_ids: np.ndarray
    pred_xy: np.ndarray
    probs: np.ndarray
    detection: np.ndarray
    pred_labels: np.ndarray
    truth: np.ndarray | None  # instance labels when annotated
    alone_probs: np.ndarray | None  # the classifier on the annotated masks


def _centres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    area, cy, cx = object_centroids(labels)
    ids = np.flatnonzero(area[1:]) + 1
    return ids, np.stack([cx[ids], cy[ids]], 1)


def predict_dataset(classifier, root: Path, split: str, segment, limit: int | None = None) -> list[ImagePredictions]:
    """Segment and classify every annotated image of ``split``."""
    root = Path(root)
    manifest = load_manifest(root)
    index = class_index(classifier.config.classes)
    out = []
    for image_id in sorted(i for i, s in manifest["split"].items() if s == split)[:limit]:
        img = read_image(find_image_file(root, image_id))
        px = image_pixel_size(manifest, image_id, None) or classifier.config.pixel_size_um
        truth, alone = None, None
        cls_path, lab_path, pts = root / "classes" / f"{image_id}.json", label_file(root, "nuclei", image_id), \
            points_file(root, image_id)
        if cls_path.is_file() and lab_path is not None:
            truth = read_labels(lab_path)
            names = json.loads(cls_path.read_text())
            to_idx = {int(k): index.get(class_key(v), -1) for k, v in names["class_names"].items()}
            per_id = {int(k): int(v) for k, v in names["instance_class"].items()}
            tids, true_xy = _centres(truth)
            true_cls = np.array([to_idx.get(per_id.get(int(i), -1), -1) for i in tids], np.int64)
            alone = classifier.predict(img.data, truth, px, tids).probs
        elif pts is not None:
            p = read_points(pts)
            true_xy = np.array([(x, y) for x, y, _ in p], float).reshape(-1, 2)
            true_cls = np.array([index.get(class_key(c), -1) for _, _, c in p], np.int64)
        else:
            continue
        pred = segment(img.data, px)
        pids, pxy = _centres(pred)
        cp = classifier.predict(img.data, pred, px, pids)
        h, w = img.data.shape[-2:]
        out.append(ImagePredictions(image_id, px, h * w * px * px / 1e6, true_xy, true_cls, pids, pxy, cp.probs,
                                    cp.detection, pred, truth, alone))
    return out


def score_dataset(images: list[ImagePredictions], classes: list[str], filters=FILTERS) -> dict:
    """Every score of :func:`predict_dataset`'s output: per detection filter (None: every object kept) the
    HoVer-Net scores and the segmentation's F1@0.5; the classifier alone; FROC per class."""
    other = classes.index("other") if "other" in classes else -1
    point_route = any(im.truth is None for im in images)
    present = sorted({int(c) for im in images for c in im.true_cls if c >= 0})
    result: dict = {"classes": classes, "images": len(images), "annotated": int(sum(len(im.true_xy) for im in images)),
                    "filters": {}}
    for thr in filters:
        pooled, counts = [], MatchCounts()
        for im in images:
            keep = np.ones(len(im.pred_ids), bool) if thr is None else im.detection >= thr
            cls = im.probs.argmax(1) if len(im.pred_ids) else np.zeros(0, int)
            if point_route:
                keep &= cls != other
            pooled.append((im.true_xy, im.true_cls, im.pred_xy[keep], cls[keep]))
            if im.truth is not None:
                lut = np.zeros(int(im.pred_labels.max(initial=0)) + 1, np.int64)
                lut[im.pred_ids[keep]] = im.pred_ids[keep]
                counts = counts + match_counts(im.truth, lut[im.pred_labels])
        radius = PAIR_RADIUS_UM / images[0].pixel_size_um if images else 1.0
        s = hovernet_scores(pooled, present, radius)
        s["f_c"] = {classes[int(c)]: v for c, v in s["f_c"].items()}
        if not point_route:
            seg = summarise(counts)
            s["segmentation_f1@0.5"], s["segmentation_f1_mean"] = seg["f1@0.5"], seg["f1_mean"]
            s["precision@0.5"] = counts.tp[0.5] / max(counts.n_pred, 1)
            s["recall@0.5"] = counts.tp[0.5] / max(counts.n_true, 1)
        result["filters"]["none" if thr is None else f"{thr:g}"] = s
    alone = [(im.true_cls, im.alone_probs) for im in images if im.alone_probs is not None]
    if alone:
        t = np.concatenate([a for a, _ in alone])
        p = np.concatenate([b for _, b in alone])
        ok = t >= 0
        result["annotated_masks"] = classification_report(t[ok], p[ok], classes)
    area = float(sum(im.area_mm2 for im in images))
    result["froc"] = {}
    for c in present:
        per = []
        for im in images:
            score = im.probs[:, c] * (im.detection if im.detection.size else 1.0)
            per.append((im.true_xy[im.true_cls == c], im.pred_xy, score))
        radius = FROC_RADIUS_UM / images[0].pixel_size_um
        result["froc"][classes[c]] = froc(per, radius, area)
    if result["froc"]:
        result["froc_mean"] = float(np.mean([v["mean"] for v in result["froc"].values()]))
    result["area_mm2"] = area
    return result
