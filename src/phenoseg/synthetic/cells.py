"""Synthetic whole cells around synthetic nuclei, and two-channel (nuclear + membrane) pictures of them:
data for two-target (nuclei + cells) models in tests and benchmarks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels, find_boundaries

from phenoseg.synthetic.nuclei import synthetic_labels


def grow_cells(nuclei: np.ndarray, distance: float = 6.0, seed: int = 0) -> np.ndarray:
    """Cells grown from ``nuclei`` (same ids): each nucleus expanded by up to ``distance`` px (touching
    neighbours split the space between them), each cell cut to its own random radius."""
    rng = np.random.default_rng(seed)
    cells = expand_labels(nuclei, distance)
    n = int(nuclei.max(initial=0))
    if n == 0:
        return cells.astype(np.int32)
    reach = rng.uniform(0.5, 1.0, n + 1) * distance
    dist = ndi.distance_transform_edt(nuclei == 0)
    keep = (cells > 0) & (dist <= reach[cells])
    return np.where(keep, cells, 0).astype(np.int32)


def nuclei_and_cells(shape: tuple[int, int] = (128, 128), n_objects: int = 20, seed: int = 0,
                     radius: tuple[float, float] = (3.0, 6.0), distance: float = 6.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(nuclei, cells) label images; cell i contains nucleus i."""
    nuclei = synthetic_labels(shape, n_objects, seed=seed, radius=radius, min_area=12)
    return nuclei, grow_cells(nuclei, distance, seed)


def render_two_channel(nuclei: np.ndarray, cells: np.ndarray, seed: int = 0) -> np.ndarray:
    """(2, Y, X) uint16 fluorescence: a nuclear channel and a membrane channel (cell outlines)."""
    rng = np.random.default_rng(seed)
    nuc = ndi.gaussian_filter((nuclei > 0).astype(np.float32), 1.0)
    membrane = ndi.gaussian_filter(find_boundaries(cells, mode="inner").astype(np.float32), 0.8)
    membrane += 0.15 * ndi.gaussian_filter((cells > 0).astype(np.float32), 2.0)
    img = np.stack([200 + 3000 * nuc, 150 + 2500 * membrane]) + rng.normal(0, 40, (2,) + nuclei.shape)
    return np.clip(img, 0, 65535).astype(np.uint16)
