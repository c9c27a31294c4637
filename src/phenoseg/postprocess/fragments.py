"""One connected piece per object: the detached fragments an object can carry after merging, upsampling or
tiling are removed, so every object is one polygon in QuPath and its area is its own. Pieces must be
4-connected (edge to edge): two parts touching only at a corner would still be a MultiPolygon."""

from __future__ import annotations

import numpy as np
from skimage.measure import label as connected_regions


def keep_largest_parts(labels: np.ndarray) -> np.ndarray:
    """``labels`` with every object reduced to its largest 4-connected piece (ties: the first found); ids
    are kept. Returns the input itself when no object has a second piece."""
    if labels.size == 0 or labels.max() == 0:
        return labels
    parts = connected_regions(labels, background=0, connectivity=1)  # pieces of equal value
    n_parts = int(parts.max())
    owner = np.zeros(n_parts + 1, np.int64)
    owner[parts.ravel()] = labels.ravel()
    ids = owner[1:]
    if np.unique(ids).size == n_parts:
        return labels  # one piece per object
    size = np.bincount(parts.ravel(), minlength=n_parts + 1)[1:]
    order = np.lexsort((-size, ids))  # by object, largest piece first
    first = np.ones(n_parts, bool)
    first[1:] = ids[order][1:] != ids[order][:-1]
    keep = np.zeros(n_parts + 1, bool)
    keep[order[first] + 1] = True
    return np.where(keep[parts], labels, 0).astype(labels.dtype, copy=False)
