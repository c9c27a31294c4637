"""Classifier training data from what annotators produce, at the classifier's pixel size, held in memory.

Every image holds its scaled pixels, one or two label maps (the human instances, the segmenter's objects)
and a list of objects, each with a gold class (−1: none), a detection target (1 a nucleus, 0 a false
detection of the segmenter, −1 unknown) and a silver class (−1: none). Sources:

- instance maps with per-instance classes (``classes/<id>.json``, the CoNSeP layout): every annotated
  object (its own mask), and the segmenter's objects on the image, paired with the annotations by centroid
  within 3 µm (paired: the annotation's class; unpaired: a false detection);
- point annotations (``points/<id>.csv`` with ``x,y,class``, or QuPath GeoJSON points with a
  classification): the segmenter's objects, each taking the class of the point inside it, unmatched ones
  "other";
- silver labels: the segmenter's objects on other images, classed by a teacher classifier.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.evaluation.classification import pair_points
from phenoseg.io.datasets import find_image_file, image_pixel_size, label_file, load_manifest
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels
from phenoseg.phenotype.crops import scale_image
from phenoseg.phenotype.table import object_centroids
from phenoseg.preprocess import resample_image, resize_labels

PAIR_RADIUS_UM = 3.0  # HoVer-Net's pairing distance (12 px at 0.25 µm/px)


@dataclass
class ClassImage:
    """One image at the classifier's pixel size and its objects (row i: label ``ids[i]`` of
    ``masks[source[i]]``)."""

    dataset: str
    image_id: str
    image: np.ndarray  # (C, H, W) float32, scaled
    masks: list[np.ndarray]
    source: np.ndarray
    ids: np.ndarray
    cy: np.ndarray
    cx: np.ndarray
    gold: np.ndarray
    detection: np.ndarray
    silver: np.ndarray
    true_xy: np.ndarray | None = None  # annotated positions (x, y) in classifier pixels, for validation
    true_cls: np.ndarray | None = None
    pred_source: int = -1  # the mask holding the segmenter's objects (−1: none)

    def __len__(self) -> int:
        return int(self.ids.size)


def class_key(name: str) -> str:
    """A class name reduced to its first word, lower case ("spindle-shaped (fibroblast …)" → "spindle")."""
    return name.strip().split()[0].split("-")[0].lower() if name.strip() else ""


def class_index(names: list[str]) -> dict[str, int]:
    """Name (and its :func:`class_key`) → index in ``names``."""
    out = {}
    for i, n in enumerate(names):
        out[n.lower()] = i
        out[class_key(n)] = i
    return out


def _objects(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    area, cy, cx = object_centroids(labels)
    ids = np.flatnonzero(area[1:]) + 1
    return ids, cy[ids], cx[ids]


def read_points(path: Path) -> list[tuple[float, float, str]]:
    """(x, y, class) of a CSV with ``x,y,class`` columns, or of QuPath GeoJSON points with a classification."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"x", "y", "class"} <= set(rows[0]):
            raise PhenosegError(f"{path}: a points CSV needs the columns x, y, class")
        return [(float(r["x"]), float(r["y"]), r["class"]) for r in rows]
    data = json.loads(path.read_text())
    feats = data.get("features", []) if isinstance(data, dict) else data
    out = []
    for f in feats:
        geom, props = f.get("geometry") or {}, f.get("properties") or {}
        cls = props.get("classification") or {}
        name = cls.get("name") if isinstance(cls, dict) else cls
        coords = [geom.get("coordinates")] if geom.get("type") == "Point" else geom.get("coordinates", [])
        if geom.get("type") in ("Point", "MultiPoint") and name:
            out += [(float(x), float(y), str(name)) for x, y, *_ in coords]
    return out


def points_file(root: Path, image_id: str) -> Path | None:
    """``points/<id>.csv`` or ``points/<id>.geojson``."""
    for suffix in (".csv", ".geojson", ".json"):
        p = Path(root) / "points" / f"{image_id}{suffix}"
        if p.is_file():
            return p
    return None


Segment = Callable[[np.ndarray, float], np.ndarray]  # (image C×Y×X, µm/px) → labels on the image's grid


def load_class_images(root: Path, split: str, config, segment: Segment | None, teacher=None,
                      limit: int | None = None) -> list[ClassImage]:
    """The images of ``split`` of a dataset as :class:`ClassImage` for a classifier ``config``: classes from
    ``classes/`` (with instance maps) or ``points/``; with ``teacher`` (a
    :class:`phenoseg.phenotype.classify.Classifier`) silver labels of the segmenter's objects instead."""
    root = Path(root)
    manifest = load_manifest(root)
    ids = sorted(i for i, s in manifest["split"].items() if s == split)[:limit]
    index = class_index(config.classes)
    silver_index = class_index(config.silver_classes or config.classes)
    out = []
    for image_id in ids:
        img = read_image(find_image_file(root, image_id))
        px = image_pixel_size(manifest, image_id, None) or config.pixel_size_um
        if img.data.shape[0] != config.in_channels:
            continue
        lab_path = label_file(root, "nuclei", image_id)
        cls_path = root / "classes" / f"{image_id}.json"
        pts_path = points_file(root, image_id)
        if teacher is None and not (cls_path.is_file() and lab_path is not None) and pts_path is None:
            continue
        pred = segment(img.data, px) if segment is not None else None
        if pred is None and (teacher is not None or pts_path is not None):
            raise PhenosegError("point annotations and silver labels need a segmenter")
        scaled = scale_image(img.data, config.normalise, tuple(config.norm_percentiles))
        big = resample_image(scaled, px / config.pixel_size_um)
        f = big.shape[-1] / scaled.shape[-1]
        item = _image_objects(root.name, image_id, img.data, big, f, px, config, pred, lab_path, cls_path, pts_path,
                              index, silver_index, teacher)
        if item is not None and len(item):
            out.append(item)
    return out


def _image_objects(dataset, image_id, raw, big, f, px, config, pred, lab_path, cls_path, pts_path, index,
                   silver_index, teacher) -> ClassImage | None:
    shape = big.shape[-2:]
    masks, rows = [], []  # rows: (source, ids, cy, cx, gold, det, silver)
    radius = PAIR_RADIUS_UM / px
    true_xy = true_cls = None
    if teacher is not None:
        ids, cy, cx = _objects(pred)
        p = teacher.predict(raw, pred, px, ids)
        silver = np.array([silver_index.get(class_key(c), -1) for c in p.class_names()], np.int64)
        silver[p.detection < 0.5] = -1
        masks.append(resize_labels(pred, shape))
        rows.append((0, ids, cy, cx, np.full(len(ids), -1), np.full(len(ids), -1), silver))
    elif cls_path.is_file() and lab_path is not None:
        gt = read_labels(lab_path)
        names = json.loads(cls_path.read_text())
        per_id = {int(k): int(v) for k, v in names["instance_class"].items()}
        to_idx = {int(k): index.get(class_key(v), -1) for k, v in names["class_names"].items()}
        ids, cy, cx = _objects(gt)
        gold = np.array([to_idx.get(per_id.get(int(i), -1), -1) for i in ids], np.int64)
        masks.append(resize_labels(gt, shape))
        rows.append((0, ids, cy, cx, gold, np.ones(len(ids), np.int64), np.full(len(ids), -1)))
        true_xy, true_cls = np.stack([cx, cy], 1), gold
        if pred is not None:
            pid, pcy, pcx = _objects(pred)
            ti, pi = pair_points(true_xy, np.stack([pcx, pcy], 1), radius)
            pgold = np.full(len(pid), -1, np.int64)
            pgold[pi] = gold[ti]
            det = np.zeros(len(pid), np.int64)
            det[pi] = 1
            masks.append(resize_labels(pred, shape))
            rows.append((1, pid, pcy, pcx, pgold, det, np.full(len(pid), -1)))
    else:
        pts = read_points(pts_path)
        ids, cy, cx = _objects(pred)
        gold = np.full(int(pred.max(initial=0)) + 1, index.get("other", -1), np.int64)
        xy, cls = [], []
        for x, y, name in pts:
            k = index.get(class_key(name), -1)
            xy.append((x, y))
            cls.append(k)
            yi, xi = int(round(y)), int(round(x))
            if 0 <= yi < pred.shape[0] and 0 <= xi < pred.shape[1] and pred[yi, xi] > 0:
                gold[pred[yi, xi]] = k
        masks.append(resize_labels(pred, shape))
        rows.append((0, ids, cy, cx, gold[ids], np.full(len(ids), -1), np.full(len(ids), -1)))
        true_xy, true_cls = np.asarray(xy, float).reshape(-1, 2), np.asarray(cls, np.int64)
    src = np.concatenate([np.full(len(r[1]), r[0]) for r in rows]) if rows else np.zeros(0, np.int64)
    pred_source = -1 if pred is None else len(masks) - 1

    def join(k):
        return np.concatenate([np.asarray(r[k]) for r in rows]) if rows else np.zeros(0)

    to = lambda v: (np.asarray(v, float) + 0.5) * f - 0.5  # noqa: E731
    return ClassImage(dataset, image_id, big, masks, src.astype(np.int64), join(1).astype(np.int64),
                      to(join(2)), to(join(3)), join(4).astype(np.int64), join(5).astype(np.int64),
                      join(6).astype(np.int64), None if true_xy is None else to(true_xy),
                      true_cls, pred_source)
