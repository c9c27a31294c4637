"""Exact convex areas of every object of a label image at once (for solidity), as
``skimage.measure.regionprops``' ``area_convex`` counts them: the pixels whose centres lie in (or on) the
convex hull of the midpoints of the objects' pixel edges.

No per-object loop: each object's hull is cut into rows. Its left edge at a row is the lower convex envelope
of the leftmost edge midpoints of the rows (on a half-row grid), its right edge the upper envelope of the
rightmost ones; the envelopes are found for all objects together by repeatedly dropping points that lie on
the wrong side of the chord of their neighbours, in exact integer arithmetic (coordinates doubled).
"""

from __future__ import annotations

import numpy as np


def _row_extremes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (object, row) the object's leftmost and rightmost pixel: (label, row, x_min, x_max), sorted."""
    h, w = labels.shape
    padded = np.zeros((h, w + 1), labels.dtype)
    padded[:, :w] = labels
    flat = padded.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [flat.size]]) - 1
    lab = flat[starts]
    keep = lab > 0
    starts, ends, lab = starts[keep], ends[keep], lab[keep].astype(np.int64)
    row, x0 = np.divmod(starts, w + 1)
    x1 = ends - row * (w + 1)
    key = lab * h + row
    order = np.argsort(key, kind="stable")
    key, x0, x1 = key[order], x0[order], x1[order]
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    return key[first] // h, key[first] % h, np.minimum.reduceat(x0, first), np.maximum.reduceat(x1, first)


def _lower_envelope(group: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of the vertices of each group's lower convex envelope of points (t, v), sorted by (group, t),
    one point per t; integer coordinates, so the tests are exact."""
    alive = np.ones(len(t), bool)
    while True:
        idx = np.flatnonzero(alive)
        if len(idx) < 3:
            return alive
        p, i, n = idx[:-2], idx[1:-1], idx[2:]
        inner = (group[p] == group[i]) & (group[n] == group[i])
        # v_i on or above the chord from p to n: not a vertex of the lower envelope
        above = v[i] * (t[n] - t[p]) >= v[p] * (t[n] - t[i]) + v[n] * (t[i] - t[p])
        drop = i[inner & above]
        if not drop.size:
            return alive
        alive[drop] = False


def _envelope_at(group, t, v, alive, qgroup, qt, span) -> np.ndarray:
    """The envelope through the ``alive`` vertices evaluated at (qgroup, qt), interior to each group."""
    g, tt, vv = group[alive], t[alive], v[alive]
    key = g * span + tt
    j = np.searchsorted(key, qgroup * span + qt, side="right")
    left, right = j - 1, np.minimum(j, len(key) - 1)
    dt = tt[right] - tt[left]
    frac = np.where(dt > 0, (qt - tt[left]) / np.where(dt > 0, dt, 1), 0.0)
    return vv[left] + (vv[right] - vv[left]) * frac


def convex_areas(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """``area_convex`` of labels 1..n (n: the largest label by default; absent labels give 0)."""
    labels = np.asarray(labels)
    n = int(labels.max(initial=0)) if n is None else n
    if n == 0 or not labels.any():
        return np.zeros(n, np.float64)
    lab, row, x0, x1 = _row_extremes(labels)
    # doubled coordinates: row y at t = 2y, the half rows between at 2y ± 1; x doubled likewise
    t = np.concatenate([2 * row, 2 * row - 1, 2 * row + 1])
    g = np.concatenate([lab, lab, lab])
    span = 2 * labels.shape[0] + 4
    key = g * span + (t + 1)
    order = np.argsort(key, kind="stable")
    key, g, t = key[order], g[order], t[order]
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    g, t = g[first], t[first]
    left = np.concatenate([2 * x0 - 1, 2 * x0, 2 * x0])[order]
    right = np.concatenate([2 * x1 + 1, 2 * x1, 2 * x1])[order]
    lo = np.minimum.reduceat(left, first)
    hi = np.maximum.reduceat(right, first)
    alive_lo = _lower_envelope(g, t, lo)
    alive_hi = _lower_envelope(g, t, -hi)
    # every pixel row of each object's vertical extent
    present = np.unique(lab)
    top = np.minimum.reduceat(row, np.searchsorted(lab, present))
    bottom = np.maximum.reduceat(row, np.searchsorted(lab, present))
    rows = bottom - top + 1
    qg = np.repeat(present, rows)
    qy = np.arange(rows.sum()) - np.repeat(np.cumsum(rows) - rows, rows) + np.repeat(top, rows)
    shift = 1  # the keys above hold t + 1
    lx = _envelope_at(g, t + shift, lo, alive_lo, qg, 2 * qy + shift, span) / 2
    rx = _envelope_at(g, t + shift, hi, alive_hi, qg, 2 * qy + shift, span) / 2
    count = np.floor(rx + 1e-9) - np.ceil(lx - 1e-9) + 1
    return np.bincount(qg - 1, np.maximum(count, 0), minlength=n)[:n].astype(np.float64)
