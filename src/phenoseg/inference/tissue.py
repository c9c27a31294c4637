"""Slide thumbnails, normalisation statistics from them, and a tissue mask to skip empty background."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from phenoseg.io.slide import Slide


def thumbnail(slide: Slide, max_side: int = 2048) -> tuple[np.ndarray, float]:
    """A (C, h, w) view of the whole slide with its larger side near ``max_side`` at most, and its
    downsample (level-0 pixels per thumbnail pixel). Uses a pyramid level when there is one; otherwise
    strided reads of strips of a finer level, so memory stays bounded."""
    level = slide.thumbnail_level(max_side)
    lv = slide.levels[level]
    step = max(1, int(np.ceil(max(lv.height, lv.width) / max_side)))
    if step == 1:
        return slide.read(level, 0, lv.height, 0, lv.width), slide.downsample(level)
    strips = []
    strip = max(step, (1024 // step) * step)  # rows read at once: bounded memory
    for y in range(0, lv.height, strip):
        strips.append(slide.read(level, y, y + strip, 0, lv.width)[:, ::step, ::step])
    return np.concatenate(strips, 1), slide.downsample(level) * step


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold of 1D values."""
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(values)) if values.size and values.min() < values.max() else float(values.flat[0])


def tissue_mask(thumb: np.ndarray, brightfield: bool) -> np.ndarray:
    """True where there is tissue (brightfield: darker or coloured than the bright glass; fluorescence:
    brighter than the dark background). Images without a clear background are all tissue."""
    x = thumb.astype(np.float32)
    span = max(float(x.max() - x.min()), 1e-6)
    x = (x - x.min()) / span
    if brightfield:
        grey = x.mean(0)
        sat = x.max(0) - x.min(0) if x.shape[0] >= 3 else np.zeros_like(grey)
        t = otsu(grey)
        background = (grey > t) & (sat < 0.1)
        if background.mean() < 0.05 or grey[background].mean() < 0.75:
            return np.ones(grey.shape, bool)  # no bright, grey glass: everything is tissue
        mask = ~background
    else:
        signal = x.max(0)
        mask = signal > otsu(signal) * 0.5
    mask = ndi.binary_opening(mask, iterations=1)
    return ndi.binary_dilation(mask, iterations=3)
