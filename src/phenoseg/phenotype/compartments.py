"""Nucleus ↔ cell assignment (method §2) and the cell compartments: nucleus, cytoplasm, membrane."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label in a, label in b, pixel count) for every pair of overlapping objects."""
    both = (a > 0) & (b > 0)
    if not both.any():
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    nb = int(b.max()) + 1
    keys, counts = np.unique(a[both].astype(np.int64) * nb + b[both], return_counts=True)
    return keys // nb, keys % nb, counts


def assign_nuclei_to_cells(nuclei: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair nuclei and cells one to one.

    Each nucleus goes to the cell it overlaps most; a cell chosen by several nuclei keeps the one with
    the largest overlap. The cell becomes the union of itself and its nucleus; a nucleus left without a
    cell becomes a cell of its own (new label). Returns (cells, nuclei, cell_of_nucleus) where the new
    ``nuclei`` image carries the label of its cell (0 = none) and ``cell_of_nucleus[k]`` is the cell of
    input nucleus k (index 0 unused).
    """
    cells = cells.astype(np.int64).copy()
    nuclei = nuclei.astype(np.int64)
    n_nuc = int(nuclei.max(initial=0))
    cell_lab, nuc_lab, counts = _overlaps(cells, nuclei)
    cell_of = np.zeros(n_nuc + 1, np.int64)
    if counts.size:
        # best cell per nucleus
        order = np.lexsort((-counts, nuc_lab))
        first = np.unique(nuc_lab[order], return_index=True)[1]
        best = order[first]
        # one nucleus per cell: the largest overlap among the nuclei that chose it
        order2 = np.lexsort((-counts[best], cell_lab[best]))
        winners = best[order2][np.unique(cell_lab[best][order2], return_index=True)[1]]
        cell_of[nuc_lab[winners]] = cell_lab[winners]
    next_label = int(cells.max(initial=0)) + 1
    orphans = np.flatnonzero(cell_of[1:] == 0) + 1
    present = np.bincount(nuclei.ravel(), minlength=n_nuc + 1) > 0
    orphans = orphans[present[orphans]]
    cell_of[orphans] = np.arange(next_label, next_label + orphans.size)
    nuc_as_cell = cell_of[nuclei]
    nuc_as_cell[nuclei == 0] = 0
    cells = np.where(nuc_as_cell > 0, nuc_as_cell, cells)
    return cells, nuc_as_cell, cell_of


def membrane_band(cells: np.ndarray, width: int = 2) -> np.ndarray:
    """The inner band of each cell, ``width`` px thick: cell pixels within ``width`` px of another label."""
    size = 2 * width + 1
    hi = ndi.maximum_filter(cells, size=size, mode="constant", cval=0)
    lo = ndi.minimum_filter(cells, size=size, mode="constant", cval=0)
    return np.where((cells > 0) & ((hi != cells) | (lo != cells)), cells, 0)
