"""Object matching and F1 / SQ / PQ (method §5).

One-to-one pairs with IoU ≥ τ chosen by an optimal assignment that maximises the number of matches
(ties broken by IoU). Dataset scores sum counts over images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class MatchCounts:
    """Counts for one image (or summed over many): per threshold TP, plus sums for SQ."""

    n_true: int = 0
    n_pred: int = 0
    tp: dict[float, int] = field(default_factory=lambda: {t: 0 for t in THRESHOLDS})
    iou_sum_05: float = 0.0

    def __add__(self, other: MatchCounts) -> MatchCounts:
        return MatchCounts(
            self.n_true + other.n_true,
            self.n_pred + other.n_pred,
            {t: self.tp[t] + other.tp[t] for t in THRESHOLDS},
            self.iou_sum_05 + other.iou_sum_05,
        )


def iou_matrix(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU between every true object (rows) and predicted object (columns), labels relabelled 0..n."""
    t = truth.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    nt, npred = int(t.max(initial=0)) + 1, int(p.max(initial=0)) + 1
    overlap = np.bincount(t * npred + p, minlength=nt * npred).reshape(nt, npred)
    area_t = overlap.sum(1, keepdims=True)
    area_p = overlap.sum(0, keepdims=True)
    union = area_t + area_p - overlap
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, overlap / np.maximum(union, 1), 0.0)
    return iou[1:, 1:]


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Sequential labels 1..n (0 stays background)."""
    uniq, inv = np.unique(labels, return_inverse=True)
    if uniq[0] != 0:
        inv = inv + 1
    return inv.reshape(labels.shape)


def match_counts(truth: np.ndarray, pred: np.ndarray) -> MatchCounts:
    """Match one prediction to its ground truth; negative truth values (unannotated) count as background."""
    if truth.shape != pred.shape:
        raise ValueError(f"shape mismatch: truth {truth.shape} vs prediction {pred.shape}")
    truth = _relabel(np.where(truth < 0, 0, truth))
    pred = _relabel(pred)
    iou = iou_matrix(truth, pred)
    n_true, n_pred = iou.shape
    counts = MatchCounts(n_true=n_true, n_pred=n_pred)
    if n_true == 0 or n_pred == 0:
        return counts
    for thr in THRESHOLDS:
        valid = iou >= thr
        rows = np.flatnonzero(valid.any(1))
        cols = np.flatnonzero(valid.any(0))
        if rows.size == 0:
            continue
        sub = iou[np.ix_(rows, cols)]
        sub_valid = sub >= thr
        # maximise the number of matches first, then the summed IoU
        eps = 0.5 / (min(sub.shape) + 1)
        cost = -(sub_valid * (1.0 + eps * sub))
        r, c = linear_sum_assignment(cost)
        ok = sub_valid[r, c]
        counts.tp[thr] = int(ok.sum())
        if thr == 0.5:
            counts.iou_sum_05 = float(sub[r, c][ok].sum())
    return counts


def summarise(counts: MatchCounts) -> dict[str, float]:
    """F1 at every threshold, their mean (F1^μ), SQ, PQ and the counts."""
    out: dict[str, float] = {}
    for thr in THRESHOLDS:
        tp = counts.tp[thr]
        fp = counts.n_pred - tp
        fn = counts.n_true - tp
        denom = 2 * tp + fp + fn
        out[f"f1@{thr:.1f}"] = (2 * tp / denom) if denom > 0 else 0.0
    out["f1_mean"] = float(np.mean([out[f"f1@{t:.1f}"] for t in THRESHOLDS]))
    tp05 = counts.tp[0.5]
    out["sq"] = counts.iou_sum_05 / tp05 if tp05 > 0 else 0.0
    out["pq"] = out["sq"] * out["f1@0.5"]
    out["n_true"] = counts.n_true
    out["n_pred"] = counts.n_pred
    return out
