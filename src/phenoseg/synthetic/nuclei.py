"""Synthetic nucleus label images and pictures (touching, non-convex, varied sizes) for tests and benchmarks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from phenoseg.training.instanseg.targets import seed_target


def _shape_mask(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A random object mask: ellipse, crescent (non-convex) or L-shape, centred in a square patch."""
    size = int(np.ceil(radius * 2 + 3))
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    kind = rng.choice(["ellipse", "ellipse", "crescent", "lshape"])
    angle = rng.uniform(0, np.pi)
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = ca * xx + sa * yy, -sa * xx + ca * yy
    if kind == "ellipse":
        ratio = rng.uniform(0.5, 1.0)
        return (u / radius) ** 2 + (v / (radius * ratio)) ** 2 <= 1
    if kind == "crescent":
        outer = u**2 + v**2 <= radius**2
        inner = (u - radius * 0.55) ** 2 + v**2 <= (radius * 0.75) ** 2
        return outer & ~inner
    half = radius * 0.45
    bar = (np.abs(u) <= radius) & (np.abs(v) <= half)
    foot = (np.abs(v + radius - half) <= radius) & (np.abs(u + radius - half) <= half)
    return bar | foot


def synthetic_labels(shape: tuple[int, int] = (256, 256), n_objects: int = 40, seed: int = 0,
                     radius: tuple[float, float] = (4.0, 12.0), min_area: int = 20) -> np.ndarray:
    """A label image with up to ``n_objects`` objects, some touching, some non-convex; labels 1..N.

    Every object is one connected piece of at least ``min_area`` px and centroids are ≥ 8 px apart.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    labels = np.zeros(shape, np.int32)
    next_id = 1
    for _ in range(n_objects * 4):
        if next_id > n_objects:
            break
        m = _shape_mask(rng, rng.uniform(*radius))
        ph, pw = m.shape
        y0, x0 = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
        region = labels[y0 : y0 + ph, x0 : x0 + pw]
        overlap = (region > 0) & m
        if overlap.sum() > 0.2 * m.sum():
            continue
        region[m & (region == 0)] = next_id  # later objects fill around earlier ones: touching borders
        next_id += 1
    return clean_labels(labels, min_area)


def clean_labels(labels: np.ndarray, min_area: int = 20, min_centroid_distance: float = 8.0) -> np.ndarray:
    """Keep the largest piece of each object, drop small ones and ones with too-close centroids."""
    out = np.zeros_like(labels)
    kept: list[tuple[float, float]] = []
    next_id = 1
    for idx, sl in enumerate(ndi.find_objects(labels)):
        if sl is None:
            continue
        mask = labels[sl] == idx + 1
        cc, n = ndi.label(mask)
        if n > 1:
            mask = cc == (np.argmax(np.bincount(cc.ravel())[1:]) + 1)
        if mask.sum() < min_area:
            continue
        cy, cx = ndi.center_of_mass(mask)
        cy, cx = cy + sl[0].start, cx + sl[1].start
        if kept:
            arr = np.asarray(kept)
            if (((arr[:, 0] - cy) ** 2 + (arr[:, 1] - cx) ** 2) < min_centroid_distance**2).any():
                continue
        kept.append((cy, cx))
        out[sl][mask] = next_id
        next_id += 1
    return out


def render_image(labels: np.ndarray, modality: str = "brightfield", seed: int = 0) -> np.ndarray:
    """A plausible image for ``labels``: (3, Y, X) uint8 H&E-like, or (1, Y, X) uint16 fluorescence."""
    rng = np.random.default_rng(seed)
    fg = (labels > 0).astype(np.float32)
    inner = fg * (seed_target(labels) > 0.25)
    signal = ndi.gaussian_filter(0.6 * fg + 0.4 * inner, 1.0)
    if modality == "fluorescence":
        img = 200 + 3000 * signal + rng.normal(0, 40, labels.shape)
        return np.clip(img, 0, 65535).astype(np.uint16)[None]
    bg = np.array([235, 200, 220], np.float32)[:, None, None]
    nuc = np.array([90, 60, 150], np.float32)[:, None, None]
    img = bg * (1 - signal) + nuc * signal + rng.normal(0, 6, (3,) + labels.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def dense_labels(shape: tuple[int, int], spacing: float = 13.0, seed: int = 0) -> np.ndarray:
    """Many touching blob-shaped objects fast: Voronoi cells of jittered grid points, cut to a random
    radius around each point (for benchmarks with 10⁵ objects)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    gy, gx = np.mgrid[spacing / 2 : h : spacing, spacing / 2 : w : spacing]
    py = np.clip(gy + rng.uniform(-spacing / 4, spacing / 4, gy.shape), 0, h - 1).astype(int).ravel()
    px = np.clip(gx + rng.uniform(-spacing / 4, spacing / 4, gx.shape), 0, w - 1).astype(int).ravel()
    marker = np.ones(shape, bool)
    marker[py, px] = False
    dist, (iy, ix) = ndi.distance_transform_edt(marker, return_indices=True)
    ids = np.zeros(shape, np.int64)
    ids[py, px] = np.arange(1, py.size + 1)
    labels = ids[iy, ix]
    radius = rng.uniform(spacing * 0.35, spacing * 0.6, py.size + 1)
    labels[dist > radius[labels]] = 0
    return labels.astype(np.int32)
