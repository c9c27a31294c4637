"""Classification after segmentation (method §3): a crop classifier run on every object, as a per-object pass.

:class:`Classifier` wraps a ``kind: classifier`` model: batched crops (any number of objects), CPU or GPU,
optional 8-fold test-time augmentation (mean of the flips / rotations). Each object gets class
probabilities (the classes given that it is a nucleus) and a ``detection_probability`` (that it is one).
:class:`ClassifyPass` writes them as columns: ``class``, ``class_probability``, ``detection_probability``
and ``prob_<class>``; :func:`drop_undetected` removes objects below a detection threshold from labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from phenoseg.errors import PhenosegError
from phenoseg.inference.onnx_backend import OnnxModule, onnxruntime_available
from phenoseg.phenotype.crops import object_crops
from phenoseg.phenotype.table import ObjectTable, PassContext, object_centroids


@dataclass
class ClassPredictions:
    """Per object (row i is label ``ids[i]``): class probabilities (N, K) and detection probability (N,)."""

    ids: np.ndarray
    probs: np.ndarray
    detection: np.ndarray
    classes: list[str]

    def class_names(self) -> np.ndarray:
        """The most probable class of each object."""
        names = np.asarray(self.classes, dtype=object)
        return names[self.probs.argmax(1)] if len(self.ids) else np.zeros(0, dtype=object)

    def subset(self, ids: np.ndarray) -> ClassPredictions:
        """The rows of ``ids`` (NaN rows for ids not predicted)."""
        pos = {int(i): r for r, i in enumerate(self.ids.tolist())}
        rows = np.array([pos.get(int(i), -1) for i in ids], np.int64)
        ok = rows >= 0
        probs = np.full((len(ids), len(self.classes)), np.nan)
        det = np.full(len(ids), np.nan)
        probs[ok], det[ok] = self.probs[rows[ok]], self.detection[rows[ok]]
        return ClassPredictions(np.asarray(ids, np.int64), probs, det, self.classes)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips / rotations of (B, C, H, W) crops."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


ONNX_MIN_OBJECTS = 1000  # backend auto: where ONNX Runtime (0.3 vs 0.75 ms per object) repays its 0.2–1 s export


class Classifier:
    """Runs a crop classifier on the objects of an image (``model``: a loaded ``kind: classifier`` model)."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", tta: bool = False,
                 batch: int = 512, backend: str = "auto") -> None:
        """``backend``: torch, onnx (ONNX Runtime, CPU), or auto (ONNX Runtime on the CPU once an image has
        ``ONNX_MIN_OBJECTS`` objects, when installed)."""
        if backend not in ("torch", "onnx", "auto"):
            raise PhenosegError(f"backend='{backend}': expected torch, onnx or auto")
        self.model = model.to(device).eval()
        self.config = model.config
        self.device = torch.device(device)
        self.tta, self.batch = tta, batch
        self.backend = "torch"  # the runtime in use
        self._run = self.model
        self._onnx_ok = backend == "onnx" or (backend == "auto" and self.device.type == "cpu"
                                              and onnxruntime_available())
        if backend == "onnx":
            self.use_fast_runtime()

    def use_fast_runtime(self) -> None:
        """Switch the network to ONNX Runtime (~2x faster on the CPU, probabilities equal to ~1e-5; the export
        costs 1-4 s once, so ``auto`` switches only for many objects)."""
        if not self._onnx_ok:
            return
        if self._run is self.model:
            c, s = self.config.input_channels, self.config.crop_px
            self._run = OnnxModule(self.model.float(), torch.zeros(2, c, s, s), {0: "b"})
        self.backend = "onnx"

    @torch.inference_mode()
    def logits(self, crops: np.ndarray) -> torch.Tensor:
        """(N, K + 1) logits of crops, the mean over the 8 flips / rotations with TTA."""
        x = torch.from_numpy(crops).to(self.device)
        if self.backend == "torch":
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.tta:
            return self._run(x).float().cpu()
        return torch.stack([self._run(dihedral(x, k).contiguous()) for k in range(8)]).mean(0).float().cpu()

    def predict(self, image: np.ndarray, labels: np.ndarray, pixel_size_um: float | None,
                ids: np.ndarray | None = None) -> ClassPredictions:
        """Class and detection probabilities of objects ``ids`` (default: every label) of ``labels``, with
        ``image`` (C, Y, X) on the labels' grid."""
        cfg = self.config
        if image.shape[0] != cfg.in_channels:
            raise PhenosegError(f"classifier '{cfg.name}' reads {cfg.in_channels} channel(s) "
                                f"({', '.join(cfg.channel_names)}); the image has {image.shape[0]}")
        area, cy, cx = object_centroids(labels)
        present = np.flatnonzero(area[1:]) + 1
        ids = present if ids is None else np.asarray(ids, np.int64)
        known = np.isin(ids, present)
        want = ids[known]
        if len(want) >= ONNX_MIN_OBJECTS:
            self.use_fast_runtime()
        k = len(cfg.classes)
        probs, det = np.full((len(want), k), np.nan), np.full(len(want), np.nan)
        for rows, crops in object_crops(image, labels, want, cy[want], cx[want], pixel_size_um, cfg, self.batch):
            z = self.logits(crops)
            probs[rows] = torch.softmax(z[:, :k], 1).numpy()
            det[rows] = torch.sigmoid(z[:, k]).numpy()
        out = ClassPredictions(want, probs, det, list(cfg.classes))
        return out if known.all() else out.subset(ids)


def prediction_columns(pred: ClassPredictions) -> dict[str, np.ndarray]:
    """The columns a classification adds: ``class``, ``class_probability``, ``detection_probability``,
    ``prob_<class>`` (an object without a prediction: empty class, NaN probabilities)."""
    ok = np.isfinite(pred.detection)
    names = np.full(len(pred.ids), "", dtype=object)
    top = np.full(len(pred.ids), np.nan)
    if ok.any():
        names[ok] = np.asarray(pred.classes, dtype=object)[pred.probs[ok].argmax(1)]
        top[ok] = pred.probs[ok].max(1)
    cols = {"class": names, "class_probability": top, "detection_probability": pred.detection}
    for j, c in enumerate(pred.classes):
        cols[f"prob_{c}"] = pred.probs[:, j]
    return cols


@dataclass
class ClassifyPass:
    """The per-object pass: classifies the objects of the classifier's target (a cell's row takes its
    nucleus's class when the classifier reads nuclei). ``precomputed``: predictions already made (after a
    detection filter), reused for the ids they hold."""

    classifier: Classifier
    precomputed: ClassPredictions | None = None
    name: str = "classify"
    needs_all_objects: bool = False

    def __call__(self, table: ObjectTable, context: PassContext) -> None:
        target = self.classifier.config.target
        labels = context.labels.get(target, context.labels[table.target])
        if self.precomputed is not None and np.isin(table.ids, self.precomputed.ids).all():
            pred = self.precomputed.subset(table.ids)
        else:
            pred = self.classifier.predict(context.image, labels, context.pixel_size_um, table.ids)
        for name, values in prediction_columns(pred).items():
            table.add_column(name, values)
        table.classes = (list(pred.classes), [tuple(c) for c in self.classifier.config.colours])


def drop_undetected(labels: dict[str, np.ndarray], pred: ClassPredictions, threshold: float,
                    target: str) -> tuple[dict[str, np.ndarray], int]:
    """Remove the objects of ``target`` whose detection probability is below ``threshold`` (and, for paired
    nuclei and cells, the cell with the same id); ids are kept. Returns the labels and how many were removed."""
    drop = pred.ids[pred.detection < threshold]
    if not drop.size:
        return labels, 0
    out = {}
    for t, lab in labels.items():
        if t == target or (target == "nuclei" and t == "cells"):
            lut = np.arange(int(lab.max(initial=0)) + 1, dtype=lab.dtype)
            lut[drop[drop < lut.size]] = 0
            out[t] = lut[lab]
        else:
            out[t] = lab
    return out, int(drop.size)


BUNDLED_CLASSIFIER = {3: "brightfield_nucleus_classes"}  # channels → the bundled default classifier


@lru_cache(maxsize=4)
def load_classifier(name: str, device: str = "cpu", tta: bool = False, n_channels: int = 3) -> Classifier:
    """A :class:`Classifier` of a model (bundled name or folder; ``auto``: the bundled default for images of
    ``n_channels`` channels), loaded once per process."""
    from phenoseg.devices import pick_device
    from phenoseg.models.zoo import load_model

    if name == "auto":
        if n_channels not in BUNDLED_CLASSIFIER:
            raise PhenosegError(f"classify=: no bundled classifier reads {n_channels}-channel images (the bundled "
                                "one reads RGB brightfield); give a classifier model trained on such images")
        name = BUNDLED_CLASSIFIER[n_channels]
    dev = pick_device(device)
    model = load_model(name, dev)
    if getattr(model.config, "kind", "") != "classifier":
        raise PhenosegError(f"classify=: '{name}' is a segmentation model, not a classifier")
    return Classifier(model, dev, tta)


def classify_labels(classifier: Classifier, image: np.ndarray, labels: dict[str, np.ndarray],
                    pixel_size_um: float | None, min_detection_probability: float | None
                    ) -> tuple[dict[str, np.ndarray], ClassifyPass, int]:
    """Classify the objects of an image once: returns the labels (objects below
    ``min_detection_probability`` removed), the pass that writes the predictions' columns, and how many were
    removed."""
    target = classifier.config.target if classifier.config.target in labels else next(iter(labels))
    pred = classifier.predict(image, labels[target], pixel_size_um)
    dropped = 0
    if min_detection_probability is not None:
        labels, dropped = drop_undetected(labels, pred, min_detection_probability, target)
    return labels, ClassifyPass(classifier, pred), dropped


def slide_classify_pass(path, name: str, device: str, tta: bool, min_detection_probability: float | None
                        ) -> ClassifyPass:
    """The classify pass of a whole slide (a detection filter is refused there: the labels are written tile
    row by tile row)."""
    from phenoseg.io.slide import open_slide

    if min_detection_probability is not None:
        raise PhenosegError(f"{path}: min_detection_probability= applies to images in memory; on a whole slide "
                            "filter by the detection_probability column of its table")
    with open_slide(path) as slide:
        n_channels = slide.n_channels
    clf = load_classifier(name, device, tta, n_channels)
    clf.use_fast_runtime()  # a slide's objects come a tile at a time, but there are many
    return ClassifyPass(clf)
