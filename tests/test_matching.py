"""Metric cases worked out by hand."""

import numpy as np
import pytest

from phenoseg.evaluation.matching import match_counts, summarise


def square(img, label, y, x, h, w):
    img[y : y + h, x : x + w] = label


def test_perfect_match_is_one():
    t = np.zeros((20, 20), int)
    square(t, 1, 0, 0, 5, 5)
    square(t, 2, 10, 10, 4, 4)
    p = np.where(t == 1, 7, np.where(t == 2, 3, 0))  # other label ids, same objects
    s = summarise(match_counts(t, p))
    assert s["f1@0.5"] == 1.0 and s["f1_mean"] == 1.0 and s["sq"] == 1.0 and s["pq"] == 1.0


def test_partial_overlap_by_hand():
    # truth: 10×10 square (100 px). prediction: same rows, shifted 3 columns right → overlap 70, union 130
    t = np.zeros((20, 30), int)
    p = np.zeros((20, 30), int)
    square(t, 1, 0, 0, 10, 10)
    square(p, 1, 0, 3, 10, 10)
    iou = 70 / 130  # 0.538: a match at 0.5 only
    # plus one missed truth object and one false prediction
    square(t, 2, 15, 20, 3, 3)
    square(p, 2, 15, 0, 3, 3)
    s = summarise(match_counts(t, p))
    assert s["f1@0.5"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))  # TP=1, FP=1, FN=1 → 0.5
    assert s["f1@0.6"] == 0.0
    assert s["f1_mean"] == pytest.approx(0.5 / 5)
    assert s["sq"] == pytest.approx(iou)
    assert s["pq"] == pytest.approx(iou * 0.5)
    assert (s["n_true"], s["n_pred"]) == (2, 2)


def test_one_to_one_assignment():
    # one big prediction covering two small truths: at most one match
    t = np.zeros((10, 20), int)
    square(t, 1, 0, 0, 10, 10)
    square(t, 2, 0, 10, 10, 2)
    p = np.zeros_like(t)
    square(p, 5, 0, 0, 10, 12)  # IoU with 1 = 100/120 = 0.83, with 2 = 20/120
    c = match_counts(t, p)
    assert c.tp[0.5] == 1 and c.tp[0.8] == 1 and c.tp[0.9] == 0


def test_ignored_and_empty():
    t = np.full((8, 8), -1)
    p = np.zeros((8, 8), int)
    s = summarise(match_counts(t, p))
    assert s["n_true"] == 0 and s["n_pred"] == 0
    with pytest.raises(ValueError):
        match_counts(np.zeros((4, 4), int), np.zeros((5, 4), int))


def test_dataset_counts_are_summed():
    t = np.zeros((10, 10), int)
    square(t, 1, 0, 0, 4, 4)
    a = match_counts(t, t)  # 1 TP
    b = match_counts(t, np.zeros_like(t))  # 1 FN
    s = summarise(a + b)
    assert s["f1@0.5"] == pytest.approx(2 / 3)
    assert s["n_true"] == 2 and s["n_pred"] == 1
