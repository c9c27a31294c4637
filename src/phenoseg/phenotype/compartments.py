"""Nucleus ↔ cell assignment (method §2) and the cell compartments: nucleus, cytoplasm, membrane."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi

from phenoseg.postprocess.pairing import cell_of_nucleus


def assign_nuclei_to_cells(nuclei: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair nuclei and cells one to one by the decoder's rule (:mod:`phenoseg.postprocess.pairing`), keeping
    the cells' ids: the cell becomes the union of itself and its nucleus; a nucleus left without a cell becomes
    a cell of its own (a new label after the largest). Returns (cells, nuclei, cell_of_nucleus) where the new
    ``nuclei`` image carries the label of its cell (0 = none) and ``cell_of_nucleus[k]`` is the cell of input
    nucleus k (index 0 unused)."""
    cells = cells.astype(np.int64)
    nuclei = nuclei.astype(np.int64)
    cell_of = cell_of_nucleus(torch.from_numpy(nuclei), torch.from_numpy(cells)).numpy()
    next_label = int(cells.max(initial=0)) + 1
    orphans = np.flatnonzero(cell_of[1:] == 0) + 1
    present = np.bincount(nuclei.ravel(), minlength=cell_of.size) > 0
    orphans = orphans[present[orphans]]
    cell_of[orphans] = np.arange(next_label, next_label + orphans.size)
    nuc_as_cell = np.where(nuclei > 0, cell_of[nuclei], 0)
    cells = np.where(nuc_as_cell > 0, nuc_as_cell, cells)
    return cells, nuc_as_cell, cell_of


def membrane_band(cells: np.ndarray, width: int = 2) -> np.ndarray:
    """The inner band of each cell, ``width`` px thick: cell pixels within ``width`` px of another label."""
    size = 2 * width + 1
    hi = ndi.maximum_filter(cells, size=size, mode="constant", cval=0)
    lo = ndi.minimum_filter(cells, size=size, mode="constant", cval=0)
    return np.where((cells > 0) & ((hi != cells) | (lo != cells)), cells, 0)
