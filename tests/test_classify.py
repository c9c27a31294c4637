"""Classification after segmentation: metrics worked by hand, crops, the classifier model, training from
instance classes and points, and the commands' outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from phenoseg.cli.main import main
from phenoseg.errors import PhenosegError
from phenoseg.evaluation.classification import (
    classification_report,
    froc,
    hovernet_scores,
    pair_points,
    roc_auc,
)
from phenoseg.models.classifier import ClassifierConfig, build_classifier
from phenoseg.models.zoo import load_model, save_model
from phenoseg.phenotype.classify import Classifier, ClassifyPass, drop_undetected, prediction_columns
from phenoseg.phenotype.crops import gather_crops, scale_image
from phenoseg.phenotype.table import object_centroids
from phenoseg.synthetic import render_image, synthetic_labels
from phenoseg.training.classifier.data import load_class_images, read_points


def test_pairing_prefers_more_pairs_then_shorter_distances():
    true = np.array([[0.0, 0.0], [10.0, 0.0]])
    pred = np.array([[5.0, 0.0], [14.0, 0.0]])
    # greedy nearest would pair pred 0 with true 0 or 1 at distance 5; optimal pairs both
    ti, pi = pair_points(true, pred, radius=6.0)
    assert sorted(zip(ti.tolist(), pi.tolist())) == [(0, 0), (1, 1)]
    ti, pi = pair_points(true, pred, radius=4.5)
    assert list(zip(ti.tolist(), pi.tolist())) == [(1, 1)]


def test_hovernet_scores_by_hand():
    # true: A(class 1) at 0,0; B(class 2) at 50,0; C(class 1) at 100,0 (missed)
    # pred: near A classed 1 (TP_1); near B classed 1 (FP_1, FN_2); far away classed 2 (FP_d,2)
    true_xy = np.array([[0, 0], [50, 0], [100, 0]], float)
    pred_xy = np.array([[1, 0], [51, 0], [300, 0]], float)
    s = hovernet_scores([(true_xy, np.array([1, 2, 1]), pred_xy, np.array([1, 1, 2]))], [1, 2], radius=12)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1)
    assert s["f_d"] == pytest.approx(4 / 6)
    # class 1: pairs where either side is 1: (1,1), (2,1) → TP 1, FP 1, FN 0; unpaired: FP_d,1 0, FN_d,1 1 (C)
    assert s["f_c"]["1"] == pytest.approx(2 / (2 + 2 + 0 + 0 + 1))
    # class 2: pairs (2,1) → TP 0, FN 1; unpaired pred of class 2: 1 → 0 / (2 + 1)
    assert s["f_c"]["2"] == 0.0


def test_roc_auc_and_report_by_hand():
    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs ranked right 3 of 4
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1])) == pytest.approx(0.75)
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    rep = classification_report(np.array([0, 0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9],
                                                                     [0.3, 0.7]]), ["a", "b"])
    assert rep["confusion"] == [[1, 1], [0, 2]]
    assert rep["f1"]["a"] == pytest.approx(2 / 3) and rep["f1"]["b"] == pytest.approx(0.8)
    assert rep["accuracy"] == 0.75


def test_froc_by_hand():
    # 4 annotated points in 1 mm²; detections by confidence: hit, miss, hit, miss, hit
    true = np.array([[0, 0], [100, 0], [200, 0], [300, 0]], float)
    pred = np.array([[1, 0], [500, 500], [101, 0], [600, 600], [201, 0]], float)
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    r = froc([(true, pred, score)], radius=5, area_mm2=1.0, rates=(0, 1, 2))
    # ≤ 0 FP: 1 hit; ≤ 1 FP: 2 hits; ≤ 2 FP: 3 hits
    assert r["sensitivity"] == {"0": 0.25, "1": 0.5, "2": 0.75}
    assert r["mean"] == pytest.approx(0.5)
    # a second detection on a point already hit is a false positive
    r = froc([(true[:1], np.array([[0, 0], [1, 1]], float), np.array([0.9, 0.8]))], 5, 1.0, rates=(0,))
    assert r["sensitivity"]["0"] == 1.0 and r["n_pred"] == 2


def test_crops_centre_masks_and_outside():
    labels = np.zeros((40, 40), np.int32)
    labels[18:23, 18:23] = 1
    labels[18:23, 24:28] = 2
    img = np.ones((3, 40, 40), np.float32)
    c = gather_crops(img, labels, np.array([1, 2]), np.array([20.0, 20.0]), np.array([20.0, 25.5]), 16,
                     ["object", "neighbours"])
    assert c.shape == (2, 5, 16, 16)
    assert c[0, 3, 8, 8] == 1 and c[0, 3].sum() == 25 and c[0, 4].sum() == 20  # own 5×5, neighbour 5×4
    assert c[1, 3].sum() == 20 and c[1, 4].sum() == 25
    edge = gather_crops(img, labels, np.array([1]), np.array([0.0]), np.array([0.0]), 16, ["object"])
    assert edge[0, 0, :8, :8].sum() == 0 and edge[0, 0, 8:, 8:].min() == 1  # outside the image: 0
    assert scale_image(np.full((3, 4, 4), 255, np.uint8), "range").max() == 1.0


def small_classifier(classes=("other", "round", "dark"), **kw) -> torch.nn.Module:
    cfg = ClassifierConfig(name="tiny", classes=list(classes), crop_px=32, widths=[8, 12, 16, 24], **kw)
    torch.manual_seed(0)
    return build_classifier(cfg).eval()


def test_classifier_saves_loads_and_predicts_any_number(tmp_path):
    net = small_classifier()
    save_model(net, tmp_path / "clf")
    back = load_model(tmp_path / "clf")
    assert back.config.kind == "classifier" and back.config.classes == ["other", "round", "dark"]
    labels = synthetic_labels((96, 96), 12, seed=1)
    image = render_image(labels, seed=1)
    clf = Classifier(back)
    p = clf.predict(image, labels, 0.5)
    n = len(np.unique(labels)) - 1
    assert p.probs.shape == (n, 3) and np.allclose(p.probs.sum(1), 1) and ((p.detection > 0) & (p.detection < 1)).all()
    tta = Classifier(back, tta=True).predict(image, labels, 0.5)
    from phenoseg.phenotype.classify import dihedral
    from phenoseg.phenotype.crops import object_crops

    _, cy, cx = object_centroids(labels)
    ids = np.unique(labels)[1:]
    ((_, crops),) = list(object_crops(image, labels, ids, cy[ids], cx[ids], 0.5, back.config))
    with torch.no_grad():
        x = torch.from_numpy(crops)
        mean = torch.stack([back(dihedral(x, k)) for k in range(8)]).mean(0)
    assert np.allclose(tta.probs, torch.softmax(mean[:, :3], 1).numpy(), atol=1e-5)
    assert len({dihedral(torch.arange(4.0).reshape(1, 1, 2, 2), k).flatten().tolist().__str__() for k in range(8)}) == 8
    empty = clf.predict(image, np.zeros_like(labels), 0.5)
    assert empty.probs.shape == (0, 3)
    # a crop's prediction does not depend on the batch it is in
    small = Classifier(back, batch=3).predict(image, labels, 0.5)
    assert np.allclose(small.probs, p.probs, atol=1e-5)
    # ONNX Runtime (auto's choice for many objects) gives torch's probabilities
    assert clf.backend == "torch"
    fast = Classifier(back, backend="onnx")
    assert fast.backend == "onnx"
    q = fast.predict(image, labels, 0.5)
    assert np.allclose(q.probs, p.probs, atol=1e-4) and np.allclose(q.detection, p.detection, atol=1e-4)
    with pytest.raises(PhenosegError, match="backend"):
        Classifier(back, backend="tpu")
    cols = prediction_columns(p)
    assert set(cols) == {"class", "class_probability", "detection_probability", "prob_other", "prob_round",
                         "prob_dark"}
    dropped, k = drop_undetected({"nuclei": labels}, p, float(np.median(p.detection)), "nuclei")
    assert k == int((p.detection < np.median(p.detection)).sum()) and k > 0
    assert len(np.unique(dropped["nuclei"])) - 1 == n - k


def class_dataset(root: Path, n_train: int = 4, n_val: int = 2, size: int = 96, points: bool = False) -> Path:
    """Nuclei of two classes: 'dark' ones much darker than 'round' ones; instance classes or points."""
    from PIL import Image as PILImage

    (root / "images").mkdir(parents=True)
    (root / ("points" if points else "labels")).mkdir()
    if not points:
        (root / "classes").mkdir()
    split = {}
    for i in range(n_train + n_val):
        iid = f"im{i}"
        lab = synthetic_labels((size, size), 14, seed=10 + i, radius=(4, 7))
        img = render_image(lab, seed=i).astype(np.float32)
        ids = np.unique(lab)[1:]
        cls = {int(j): 1 + int(j % 2) for j in ids}
        dark = np.isin(lab, [j for j, c in cls.items() if c == 2])
        img[:, dark] *= 0.35
        PILImage.fromarray(np.moveaxis(img.clip(0, 255).astype(np.uint8), 0, -1)).save(root / "images" / f"{iid}.png")
        if points:
            from phenoseg.phenotype.table import object_centroids

            _, cy, cx = object_centroids(lab)
            rows = ["x,y,class"] + [f"{cx[j]:.1f},{cy[j]:.1f},{'round' if c == 1 else 'dark'}" for j, c in cls.items()]
            (root / "points" / f"{iid}.csv").write_text("\n".join(rows) + "\n")
            tifffile.imwrite(root / f"{iid}_truth.tif", lab.astype(np.uint16))
        else:
            tifffile.imwrite(root / "labels" / f"{iid}.tif", lab.astype(np.uint16))
            (root / "classes" / f"{iid}.json").write_text(json.dumps(
                {"class_names": {"1": "round", "2": "dark"}, "instance_class": {str(k): v for k, v in cls.items()}}))
        split[iid] = "train" if i < n_train else "val"
    (root / "manifest.json").write_text(json.dumps({"name": root.name, "pixel_size_um": 0.5, "split": split}))
    return root


def test_point_annotations_give_their_class_to_the_object_they_fall_in(tmp_path):
    root = class_dataset(tmp_path / "pts", 1, 0, points=True)
    truth = tifffile.imread(root / "im0_truth.tif").astype(np.int32)
    keep = truth.copy()
    keep[np.isin(truth, [1, 2])] = 0  # the segmenter misses objects 1 and 2 …
    extra = truth.max() + 1
    keep[2:6, 2:6] = extra  # … and finds one that no point falls in
    cfg = ClassifierConfig(classes=["other", "dark", "round"], crop_px=32)
    (im,) = load_class_images(root, "train", cfg, lambda data, px: keep)
    by_id = dict(zip(im.ids.tolist(), im.gold.tolist()))
    assert by_id[extra] == 0  # "other"
    assert by_id[3] == 1 and by_id[4] == 2  # odd ids are "dark", even ids "round"
    assert 1 not in by_id and (im.detection == -1).all()
    assert len(im.true_xy) == len(np.unique(truth)) - 1
    gj = tmp_path / "p.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [3.5, 4.0]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}}]}))
    assert read_points(gj) == [(3.5, 4.0, "Tumor")]


@pytest.mark.slow
def test_training_learns_classes_and_commands_write_them(tmp_path):
    from phenoseg.training.classifier.train import ClassifierTrainOptions, train_classifier

    root = class_dataset(tmp_path / "cls", 6, 2)
    out = tmp_path / "model"
    info = train_classifier(ClassifierTrainOptions(data=[root], out=out, segmenter=None, max_steps=60, batch_size=32,
                                                   crop_px=32, quiet=True, lr=3e-3))
    assert info["step"] == 60
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "classifier" and cfg["classes"] == ["round", "dark"]
    alone = cfg["metrics"]["val"]["annotated_masks"]
    assert alone["accuracy"] > 0.9, alone  # dark vs light nuclei: learnt in 60 steps
    # the commands: classify labels made elsewhere; segment --classify
    lab = synthetic_labels((96, 96), 14, seed=99, radius=(4, 7))
    img = render_image(lab, seed=3).astype(np.float32)
    dark_ids = [j for j in np.unique(lab)[1:] if j % 2 == 0]
    img[:, np.isin(lab, dark_ids)] *= 0.35
    tifffile.imwrite(tmp_path / "im.tif", np.moveaxis(img.astype(np.uint8), 0, -1), photometric="rgb")
    tifffile.imwrite(tmp_path / "lab.tif", lab.astype(np.uint16))
    od = tmp_path / "out"
    rc = main(["classify", str(tmp_path / "im.tif"), "--nuclei", str(tmp_path / "lab.tif"), "--model", str(out),
               "--pixel-size", "0.5", "-o", str(od), "--outputs", "geojson,csv,anndata,overlay", "--quiet"])
    assert rc == 0
    feats = json.loads((od / "im.geojson").read_text())["features"]
    names = {f["properties"]["measurements"]["Label"]: f["properties"]["classification"]["name"] for f in feats}
    right = np.mean([names[j] == ("dark" if j in dark_ids else "round") for j in names])
    assert right > 0.85
    assert "class" not in feats[0]["properties"]["measurements"]
    assert "detection_probability" in feats[0]["properties"]["measurements"]
    import csv

    rows = list(csv.DictReader(open(od / "im_measurements.csv")))
    assert {"class", "class_probability", "detection_probability", "prob_round", "prob_dark"} <= set(rows[0])
    import anndata

    ad = anndata.read_h5ad(od / "im.h5ad")
    assert list(ad.obs["class"].cat.categories) == ["round", "dark"] and len(ad.uns["class_colors"]) == 2
    assert (od / "im_overlay.png").is_file()
    # refusals: a threshold without a classifier; a segmentation model given as classifier
    assert main(["segment", str(tmp_path / "im.tif"), "-o", str(tmp_path / "s"), "--min-detection-probability",
                 "0.5", "--pixel-size", "0.5", "--quiet"]) == 2
    assert main(["classify", str(tmp_path / "im.tif"), "--nuclei", str(tmp_path / "lab.tif"), "--model",
                 "brightfield_nuclei", "--pixel-size", "0.5", "-o", str(tmp_path / "x"), "--quiet"]) == 1
    rc = main(["segment", str(tmp_path / "im.tif"), "-o", str(tmp_path / "s"), "--classify", str(out),
               "--min-detection-probability", "0.0", "--pixel-size", "0.5", "--quiet", "--outputs",
               "labels,geojson,csv,report"])
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "s" / "im_measurements.csv")))
    assert rows and all(r["class"] in ("round", "dark") for r in rows)
    assert "round" in (tmp_path / "s" / "report.html").read_text()


def test_classify_pass_uses_the_nucleus_class_for_cells():
    net = small_classifier()
    labels = synthetic_labels((64, 64), 6, seed=2)
    image = render_image(labels, seed=2)
    from phenoseg.phenotype.table import PassContext, object_table

    clf = Classifier(net)
    table = object_table(labels, "cells")
    ClassifyPass(clf)(table, PassContext(image, {"nuclei": labels, "cells": labels}, 0.5, ["r", "g", "b"]))
    direct = clf.predict(image, labels, 0.5, table.ids)
    assert np.allclose(table.columns["detection_probability"], direct.detection)
    assert table.classification() and table.classes[0] == ["other", "round", "dark"]
