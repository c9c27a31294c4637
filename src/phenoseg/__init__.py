"""phenoseg: find every nucleus and cell in microscopy images (InstanSeg-family methods).

>>> from phenoseg import Segmenter                                   # doctest: +SKIP
>>> labels = Segmenter().segment("he.tif").labels["nuclei"]          # doctest: +SKIP
>>> phenoseg.segment_slide("slide.svs", "out/")                       # doctest: +SKIP

Importing phenoseg is cheap: each name below loads its module (and torch) on first use, and
``phenoseg.Segmenter`` loads no training or evaluation code.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name → module that defines it
_EXPORTS = {
    "Segmenter": "phenoseg.inference.segmenter",
    "SegmentationResult": "phenoseg.inference.segmenter",
    "load_model": "phenoseg.models.zoo",
    "list_models": "phenoseg.models.zoo",
    "read_image": "phenoseg.io.images",
    "measure": "phenoseg.phenotype.measurements",
    "ObjectTable": "phenoseg.phenotype.table",
    "SegmentOptions": "phenoseg.batch",
    "segment_batch": "phenoseg.batch",
    "SlideOptions": "phenoseg.inference.slide_pipeline",
    "PhenosegError": "phenoseg.errors",
}

__all__ = sorted([*_EXPORTS, "segment", "segment_slide"])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)


def segment(image, model: str = "auto", pixel_size_um: float | None = None, *, device: str = "auto", **options):
    """Segment one image (path, array or Image); ``options`` are :meth:`Segmenter.segment`'s keywords.
    Returns a :class:`SegmentationResult`."""
    from phenoseg.inference.segmenter import Segmenter

    return Segmenter(model, device=device).segment(image, pixel_size_um, **options)


def segment_slide(path, out_dir, *, model: str = "auto", device: str = "auto", backend: str = "torch",
                  tta: bool = False, channels=None, seed_threshold: float | None = None,
                  mask_threshold: float | None = None, min_area: int | None = None, **slide_options):
    """Segment a whole slide (or any large image) into ``out_dir``: OME-Zarr labels per target, GeoJSON, CSV,
    resumable. ``slide_options`` are :class:`SlideOptions` fields (``tile``, ``outputs``, ``pixel_size_um``,
    ``tissue_mask``, ``resume``, ``passes``, ...); ``channels`` names or indices. Returns a ``SlideResult``."""
    from pathlib import Path

    from phenoseg.inference.segmenter import Segmenter, thresholds_dict
    from phenoseg.inference.slide_pipeline import SlideOptions
    from phenoseg.inference.slide_pipeline import segment_slide as run
    from phenoseg.io.channels import channel_indices
    from phenoseg.io.inputs import image_stem
    from phenoseg.io.slide import open_slide

    path = Path(path)
    if channels is not None:
        with open_slide(path) as slide:
            channels = channel_indices(slide.channel_names, channels, str(path))
    opts = SlideOptions(channels=channels, thresholds=thresholds_dict(seed_threshold, mask_threshold, min_area),
                        **slide_options)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    seg = Segmenter(model, device=device, backend=backend, tta=tta)
    return run(path, seg, out_dir, image_stem(path), opts)
