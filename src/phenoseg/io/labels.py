"""Label images: read any integer TIFF / PNG, write uint32 TIFF atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.io.atomic import atomic_write


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a 2D integer label image (Y, X)."""
    p = Path(path)
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(p)
        else:
            from PIL import Image as PILImage

            with PILImage.open(p) as im:
                arr = np.asarray(im)
    except Exception as exc:
        raise PhenosegError(f"{p}: cannot read label image ({type(exc).__name__}: {exc})") from exc
    arr = np.squeeze(arr)
    if arr.ndim != 2 or arr.dtype.kind not in "iub":
        raise PhenosegError(f"{p}: a label image must be 2D integer, got {arr.dtype} {arr.shape}")
    return arr


def write_labels(path: str | os.PathLike, labels: np.ndarray, pixel_size_um: float | None = None) -> Path:
    """Write a uint32 label TIFF (zlib) via a temporary file and rename: never half-written."""
    p = Path(path)
    import tifffile

    kwargs = {}
    if pixel_size_um:
        kwargs = {"resolution": (1e4 / pixel_size_um, 1e4 / pixel_size_um), "resolutionunit": "CENTIMETER"}
    with atomic_write(p, ".tif") as tmp:
        tifffile.imwrite(tmp, labels.astype(np.uint32), compression="zlib", **kwargs)
    return p
