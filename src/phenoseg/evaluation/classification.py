"""Cell classification and detection metrics (method §5).

- HoVer-Net's detection and per-class scores: predicted and true centroids paired one to one by optimal
  assignment (least total distance) within a radius (3 µm: 12 px at 0.25 µm/px); counts pooled over a
  dataset. F_d = 2TP / (2TP + FP + FN); for class c, over the pairs where either side is c,
  F_c = 2TP_c / (2TP_c + 2FP_c + 2FN_c + FP_d,c + FN_d,c) with FP_d,c / FN_d,c the unpaired predictions /
  true objects of class c.
- Macro F1, the confusion matrix and one-vs-rest ROC AUC of classes on matched objects.
- FROC as the MONKEY challenge scores point detection: detections ranked by probability, each a hit when
  within the radius of a not yet hit annotated point; sensitivity at 10, 20, 50, 100, 200, 300 false
  positives per mm² and their mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

FROC_RATES = (10, 20, 50, 100, 200, 300)


def pair_points(true_xy: np.ndarray, pred_xy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (true, pred) of one-to-one pairs within ``radius``, chosen to maximise the number of pairs and
    then minimise their total distance."""
    t, p = np.asarray(true_xy, float).reshape(-1, 2), np.asarray(pred_xy, float).reshape(-1, 2)
    if not len(t) or not len(p):
        return np.zeros(0, int), np.zeros(0, int)
    d = np.sqrt(((t[:, None, :] - p[None, :, :]) ** 2).sum(-1))
    far = d > radius
    # a pair beyond the radius costs more than any set of pairs within it, so the count comes first
    cost = np.where(far, radius * (len(t) + len(p) + 1), d)
    ti, pi = linear_sum_assignment(cost)
    keep = ~far[ti, pi]
    return ti[keep], pi[keep]


@dataclass
class DetectionCounts:
    """Pooled pairs of (true class, predicted class) plus the classes of the unpaired objects."""

    paired_true: list[np.ndarray] = field(default_factory=list)
    paired_pred: list[np.ndarray] = field(default_factory=list)
    unpaired_true: list[np.ndarray] = field(default_factory=list)
    unpaired_pred: list[np.ndarray] = field(default_factory=list)

    def add(self, true_xy, true_cls, pred_xy, pred_cls, radius: float) -> None:
        """Pair one image's objects and pool the counts."""
        true_cls, pred_cls = np.asarray(true_cls), np.asarray(pred_cls)
        ti, pi = pair_points(true_xy, pred_xy, radius)
        self.paired_true.append(true_cls[ti])
        self.paired_pred.append(pred_cls[pi])
        self.unpaired_true.append(np.delete(true_cls, ti))
        self.unpaired_pred.append(np.delete(pred_cls, pi))

    def scores(self, classes: list) -> dict:
        """F_d, F_c per class (keys are the class values as strings), their mean and the counts."""
        pt, pp = np.concatenate(self.paired_true or [[]]), np.concatenate(self.paired_pred or [[]])
        ut, up = np.concatenate(self.unpaired_true or [[]]), np.concatenate(self.unpaired_pred or [[]])
        tp, fp, fn = len(pt), len(up), len(ut)
        out = {"f_d": _ratio(2 * tp, 2 * tp + fp + fn), "tp": tp, "fp": fp, "fn": fn, "f_c": {}}
        for c in classes:
            either = (pt == c) | (pp == c)
            t, p = pt[either], pp[either]
            tpc = int(((t == c) & (p == c)).sum())
            fpc = int(((t != c) & (p == c)).sum())
            fnc = int(((t == c) & (p != c)).sum())
            fp_d, fn_d = int((up == c).sum()), int((ut == c).sum())
            out["f_c"][str(c)] = _ratio(2 * tpc, 2 * tpc + 2 * fpc + 2 * fnc + fp_d + fn_d)
        out["f_c_mean"] = float(np.mean(list(out["f_c"].values()))) if classes else float("nan")
        return out


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def hovernet_scores(images: list[tuple], classes: list, radius: float) -> dict:
    """HoVer-Net's F_d and F_c pooled over ``images``: each (true_xy, true_cls, pred_xy, pred_cls)."""
    counts = DetectionCounts()
    for true_xy, true_cls, pred_xy, pred_cls in images:
        counts.add(true_xy, true_cls, pred_xy, pred_cls, radius)
    return counts.scores(classes)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n) counts: rows true class, columns predicted."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(true, int), np.asarray(pred, int)), 1)
    return m


def per_class_f1(matrix: np.ndarray) -> np.ndarray:
    """F1 of each class from a confusion matrix (NaN for a class neither true nor predicted)."""
    tp = np.diag(matrix).astype(float)
    denom = matrix.sum(0) + matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (the Mann–Whitney statistic, ties counted half); NaN with one class only."""
    pos = np.asarray(positive, bool)
    s = np.asarray(score, float)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if not n1 or not n0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def classification_report(true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class F1, macro F1, confusion matrix and per-class ROC AUC of objects with known
    classes (``true`` indices, ``probs`` (N, K))."""
    true = np.asarray(true, int)
    pred = np.asarray(probs).argmax(1) if len(true) else np.zeros(0, int)
    m = confusion_matrix(true, pred, len(classes))
    f1 = per_class_f1(m)
    return {
        "n": int(len(true)),
        "accuracy": float((pred == true).mean()) if len(true) else float("nan"),
        "f1": {c: float(v) for c, v in zip(classes, f1)},
        "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
        "confusion": m.tolist(),
        "roc_auc": {c: roc_auc(true == k, np.asarray(probs)[:, k]) for k, c in enumerate(classes)},
    }


def froc(images: list[tuple], radius: float, area_mm2: float, rates=FROC_RATES) -> dict:
    """FROC of point detection pooled over ``images``: each (true_xy, pred_xy, pred_score); ``area_mm2`` is
    the total area scored. Returns sensitivity at each false-positive rate (per mm²) and their mean."""
    scores, hits, n_true = [], [], 0
    for true_xy, pred_xy, pred_score in images:
        t = np.asarray(true_xy, float).reshape(-1, 2)
        p = np.asarray(pred_xy, float).reshape(-1, 2)
        s = np.asarray(pred_score, float)
        n_true += len(t)
        hit = np.zeros(len(p), bool)
        if len(t) and len(p):
            tree = cKDTree(t)
            taken = np.zeros(len(t), bool)
            for i in np.argsort(-s, kind="mergesort"):  # most confident first
                near = [j for j in tree.query_ball_point(p[i], radius) if not taken[j]]
                if near:
                    j = min(near, key=lambda k: float(((t[k] - p[i]) ** 2).sum()))
                    taken[j] = True
                    hit[i] = True
        scores.append(s)
        hits.append(hit)
    s, h = np.concatenate(scores or [[]]), np.concatenate(hits or [[]]).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    tp, fp = np.cumsum(h[order]), np.cumsum(~h[order])
    sens = {}
    for r in rates:
        allowed = r * area_mm2
        ok = fp <= allowed
        sens[str(r)] = float(tp[ok].max() / n_true) if n_true and ok.any() else 0.0
    return {"sensitivity": sens, "mean": float(np.mean(list(sens.values()))), "n_true": n_true,
            "n_pred": int(len(s)), "area_mm2": float(area_mm2)}
