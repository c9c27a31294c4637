"""Overlay pictures: object outlines drawn on the image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from phenoseg.io.atomic import atomic_write
from phenoseg.normalise import percentile_normalise


def display_rgb(data: np.ndarray) -> np.ndarray:
    """(C, Y, X) → (Y, X, 3) uint8 for display (RGB as is when 8-bit, else percentile-stretched)."""
    if data.shape[0] == 3 and data.dtype == np.uint8:
        return np.moveaxis(data, 0, -1).copy()
    norm = np.clip(percentile_normalise(data[:3] if data.shape[0] >= 3 else data[:1], 0.5, 99.5), 0, 1)
    if norm.shape[0] == 1:
        norm = np.repeat(norm, 3, 0)
    return (np.moveaxis(norm, 0, -1) * 255).astype(np.uint8)


def inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-neighbour of another label (skimage's ``find_boundaries(mode="inner")``, 6×
    faster)."""
    lab = np.asarray(labels)
    p = np.pad(lab, 1, mode="edge")
    return (lab != 0) & ((p[:-2, 1:-1] != lab) | (p[2:, 1:-1] != lab) | (p[1:-1, :-2] != lab) | (p[1:-1, 2:] != lab))


OUTLINE_COLOURS = ((255, 230, 0), (0, 255, 0), (0, 255, 255), (255, 0, 255))  # yellow, green, cyan, magenta


def contrasting_colour(rgb: np.ndarray, where: np.ndarray) -> tuple[int, int, int]:
    """The outline colour farthest from the image's colour where the outlines go (yellow on H&E's purple, cyan
    on DAB's brown, ...)."""
    pixels = rgb[where] if where.any() else rgb.reshape(-1, 3)
    mean = pixels.reshape(-1, 3).mean(axis=0)
    return max(OUTLINE_COLOURS, key=lambda c: float(((np.array(c) - mean) ** 2).sum()))


def overlay(data: np.ndarray, labels: np.ndarray, colour: tuple[int, int, int] | None = None) -> np.ndarray:
    """RGB picture with the outlines of ``labels`` in ``colour`` (default: one that contrasts with the image)."""
    rgb = display_rgb(data)
    edges = inner_boundaries(labels)
    rgb[edges] = colour if colour is not None else contrasting_colour(rgb, edges)
    return rgb


def class_overlay(data: np.ndarray, labels: np.ndarray, classes: dict[int, tuple[str, tuple[int, int, int]]]
                  ) -> np.ndarray:
    """RGB picture with each object's outline in its class colour (unclassified: a contrasting colour) and a
    legend of the classes with their counts in the top-left corner."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    rgb = display_rgb(data)
    edges = inner_boundaries(labels)
    n = int(labels.max(initial=0))
    lut = np.zeros((n + 1, 3), np.uint8)
    lut[:] = contrasting_colour(rgb, edges)
    known = np.zeros(n + 1, bool)
    counts: dict[str, list] = {}
    for label, (name, colour) in classes.items():
        if label <= n:
            lut[label], known[label] = colour, True
            counts.setdefault(name, [colour, 0])[1] += 1
    rgb[edges] = lut[labels[edges]]
    if not counts:
        return rgb
    img = PILImage.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    rows = sorted(counts.items(), key=lambda kv: -kv[1][1])
    h = 12
    width = 10 + 7 * max(len(f"{name} ({c})") for name, (_, c) in rows)
    draw.rectangle([2, 2, 8 + width, 6 + h * len(rows)], fill=(255, 255, 255))
    for i, (name, (colour, c)) in enumerate(rows):
        y = 5 + i * h
        draw.rectangle([5, y + 1, 13, y + 9], fill=tuple(int(v) for v in colour))
        draw.text((17, y), f"{name} ({c})", fill=(0, 0, 0))
    return np.asarray(img).copy()


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 PNG atomically."""
    from PIL import Image as PILImage

    p = Path(path)
    with atomic_write(p, ".png") as tmp:
        PILImage.fromarray(rgb).save(tmp, format="PNG", compress_level=1)  # ~7 % larger, a third faster
    return p
