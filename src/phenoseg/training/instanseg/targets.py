"""Training targets derived from instance label maps."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def seed_target(labels: np.ndarray) -> np.ndarray:
    """Per-instance normalised distance to the instance boundary (1 at the centre, 0 outside).

    Touching instances are separated: a pixel next to a different label counts as boundary.
    """
    lab = np.where(labels < 0, 0, labels).astype(np.int64)
    if lab.max() == 0:
        return np.zeros(lab.shape, np.float32)
    p = np.pad(lab, 1, mode="edge")
    inner = (
        (lab > 0)
        & (p[:-2, 1:-1] == lab)
        & (p[2:, 1:-1] == lab)
        & (p[1:-1, :-2] == lab)
        & (p[1:-1, 2:] == lab)
    )
    dist = ndi.distance_transform_edt(inner) + (lab > 0)
    peak = ndi.maximum(dist, lab, index=np.arange(lab.max() + 1))
    peak = np.asarray(peak, np.float64)
    peak[0] = 1.0
    return (dist / np.maximum(peak[lab], 1e-6) * (lab > 0)).astype(np.float32)
