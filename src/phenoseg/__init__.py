"""phenoseg: find every nucleus and cell in microscopy images (InstanSeg-family methods).

>>> from phenoseg import Segmenter                      # doctest: +SKIP
>>> labels = Segmenter().segment("he.tif").labels["nuclei"]   # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Segmenter", "SegmentationResult", "load_model", "list_models", "read_image", "segment"]


def __getattr__(name: str):
    if name in ("Segmenter", "SegmentationResult"):
        from phenoseg.inference import segmenter

        return getattr(segmenter, name)
    if name in ("load_model", "list_models"):
        from phenoseg.models import zoo

        return getattr(zoo, name)
    if name == "read_image":
        from phenoseg.io.images import read_image

        return read_image
    raise AttributeError(name)


def segment(image, model: str = "auto", pixel_size_um: float | None = None, device: str = "auto"):
    """Segment one image (path, array or Image) and return a :class:`SegmentationResult`."""
    from phenoseg.inference.segmenter import Segmenter

    return Segmenter(model, device).segment(image, pixel_size_um)
