"""Synthetic multiplexed fluorescence images with nucleus and whole-cell truth, grown from real nucleus label
maps: training and test data for ChannelNet models (no human-labelled whole-cell multiplexed set is at hand).

Cells grow from the nuclei into irregular, touching territories of varied sizes (a few cells lose their
nucleus out of the section plane). Every channel is one kind of marker a panel has: nuclear stains (textured),
membrane markers (continuous or patchy, often on a subpopulation only), cytoplasmic, nuclear subpopulation and
punctate markers, extracellular / autofluorescent structure, empty and pure-noise channels, and duplicates of
another channel. Each channel has its own gain, background, PSF blur and Poisson–Gaussian noise; the channel
count and order are random. :class:`MultiplexSettings` holds every range, so held-out tests can draw outside
the training ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels, find_boundaries

from phenoseg.postprocess.fragments import keep_largest_parts

KINDS = ("nuclear", "membrane", "cytoplasm", "nuclear_subset", "punctate", "extracellular", "autofluorescence",
         "empty", "noise", "duplicate")


@dataclass
class MultiplexSettings:
    """Ranges of the generator (pixel units at the model's pixel size; a pair is drawn uniformly, ``photons``
    log-uniformly)."""

    channels: tuple[int, int] = (1, 8)  # channel count, nuclear channel included
    cell_distance: tuple[float, float] = (4.0, 14.0)  # how far cells reach beyond their nucleus
    irregularity: tuple[float, float] = (0.0, 4.0)  # px of smooth noise on the growth front
    membrane_width: tuple[float, float] = (1.0, 2.5)
    blur: tuple[float, float] = (0.4, 1.6)  # PSF sigma
    photons: tuple[float, float] = (15.0, 1500.0)  # photons at unit signal (Poisson)
    read_noise: tuple[float, float] = (0.0, 0.04)
    background: tuple[float, float] = (0.0, 0.25)
    subpopulation: tuple[float, float] = (0.15, 1.0)  # fraction of cells carrying a non-nuclear marker
    anucleate: float = 0.03  # cells whose nucleus is outside the section
    kind_weights: dict[str, float] = field(default_factory=lambda: {
        "nuclear": 0.08, "membrane": 0.3, "cytoplasm": 0.18, "nuclear_subset": 0.1, "punctate": 0.06,
        "extracellular": 0.06, "autofluorescence": 0.06, "empty": 0.06, "noise": 0.04, "duplicate": 0.06})


@dataclass
class MultiplexSample:
    """Raw intensities (C, H, W) float32 ≥ 0, nuclei and cells (H, W) int32 (nucleus i lies in cell i; a cell
    may have no nucleus), and each channel's kind."""

    image: np.ndarray
    nuclei: np.ndarray
    cells: np.ndarray
    kinds: list[str]


def _uniform(rng: np.random.Generator, pair: tuple[float, float]) -> float:
    return float(rng.uniform(pair[0], pair[1]))


def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise smoothed by ``sigma`` px, scaled to unit standard deviation."""
    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return n / max(float(n.std()), 1e-6)


def grow_cells(nuclei: np.ndarray, rng: np.random.Generator, settings: MultiplexSettings) -> np.ndarray:
    """Cells (same ids as ``nuclei``) grown into irregular touching territories, each to its own reach."""
    n = int(nuclei.max(initial=0))
    if n == 0:
        return np.zeros(nuclei.shape, np.int32)
    distance = _uniform(rng, settings.cell_distance)
    rough = _uniform(rng, settings.irregularity)
    territory = expand_labels(nuclei, distance + rough * 2)
    dist = ndi.distance_transform_edt(nuclei == 0)
    dist = dist + rough * smooth_noise(nuclei.shape, float(rng.uniform(2, 6)), rng)
    reach = rng.uniform(0.6, 1.0, n + 1) * distance
    keep = (territory > 0) & ((dist <= reach[territory]) | (nuclei > 0))
    cells = np.where(keep, territory, 0).astype(np.int32)
    cells = keep_largest_parts(cells)  # noise on the front can detach bits
    return np.where(nuclei > 0, nuclei, cells).astype(np.int32)


def _compartments(nuclei: np.ndarray, cells: np.ndarray, width: float) -> dict[str, np.ndarray]:
    """Masks of nuclei, cells, cytoplasm and the membrane band (``width`` px inside each cell's outline)."""
    edge = find_boundaries(cells, mode="inner")
    inside = ndi.distance_transform_edt(~edge)
    return {"nuclei": nuclei > 0, "cells": cells > 0, "cytoplasm": (cells > 0) & (nuclei == 0),
            "membrane": (cells > 0) & (inside < width)}


def _per_cell(rng: np.random.Generator, n: int, fraction: float, spread: float = 0.4) -> np.ndarray:
    """A per-cell level (index 0 = background = 0): log-normal on a random ``fraction`` of the cells, else 0."""
    level = rng.lognormal(0.0, spread, n + 1) * (rng.random(n + 1) < fraction)
    level[0] = 0.0
    return level.astype(np.float32)


def _render(kind: str, nuclei: np.ndarray, cells: np.ndarray, masks: dict[str, np.ndarray],
            rng: np.random.Generator, settings: MultiplexSettings) -> np.ndarray:
    """The clean signal (H, W) ≥ 0 of one channel of ``kind``."""
    shape = nuclei.shape
    n = int(cells.max(initial=0))
    frac = _uniform(rng, settings.subpopulation)
    if kind == "nuclear":
        texture = np.clip(1 + 0.3 * smooth_noise(shape, float(rng.uniform(0.7, 2.0)), rng), 0.2, None)
        level = _per_cell(rng, max(n, int(nuclei.max(initial=0))), 1.0, 0.35)
        return level[nuclei] * texture
    if kind == "nuclear_subset":
        level = _per_cell(rng, max(n, int(nuclei.max(initial=0))), min(frac, 0.7), 0.5)
        speckle = np.clip(1 + 0.5 * smooth_noise(shape, 1.0, rng), 0, None)
        return level[nuclei] * speckle
    if kind == "membrane":
        level = _per_cell(rng, n, frac)
        signal = level[cells] * masks["membrane"]
        if rng.random() < 0.5:  # patchy staining along the membrane
            signal = signal * (smooth_noise(shape, float(rng.uniform(1.5, 4)), rng) > rng.uniform(-1, 0.5))
        return signal + 0.1 * level[cells] * masks["cytoplasm"] * rng.random()
    if kind == "cytoplasm":
        level = _per_cell(rng, n, frac)
        texture = np.clip(1 + 0.4 * smooth_noise(shape, 1.5, rng), 0, None)
        whole = rng.random() < 0.3  # some markers fill the whole cell, nucleus included (weaker there)
        region = masks["cytoplasm"] + (0.4 * masks["nuclei"] if whole else 0)
        return level[cells] * region * texture
    if kind == "punctate":
        level = _per_cell(rng, n, frac)
        dots = (rng.random(shape) < rng.uniform(0.005, 0.03)) * masks["cells"]
        return ndi.gaussian_filter(dots.astype(np.float32), 0.8) * 6 * level[cells]
    if kind == "extracellular":
        fibres = np.abs(smooth_noise(shape, float(rng.uniform(2, 6)), rng)) < rng.uniform(0.1, 0.3)
        return fibres * (~masks["cells"] | (rng.random() < 0.3)) * float(rng.uniform(0.3, 1.0))
    if kind == "autofluorescence":
        broad = np.clip(smooth_noise(shape, float(rng.uniform(8, 30)), rng), 0, None) * 0.4
        specks = ndi.gaussian_filter((rng.random(shape) < 0.0015).astype(np.float32), 1.5) * 20
        return broad + specks
    if kind == "noise":
        return np.abs(rng.standard_normal(shape)).astype(np.float32) * float(rng.uniform(0.2, 1.0))
    return np.zeros(shape, np.float32)  # empty: background and noise only


def _acquire(signal: np.ndarray, rng: np.random.Generator, settings: MultiplexSettings) -> np.ndarray:
    """PSF blur, gain and background, Poisson–Gaussian noise; raw counts as float32."""
    x = ndi.gaussian_filter(signal.astype(np.float32), _uniform(rng, settings.blur))
    x = x * float(rng.lognormal(0, 0.4)) + _uniform(rng, settings.background)
    photons = float(np.exp(rng.uniform(np.log(settings.photons[0]), np.log(settings.photons[1]))))
    x = rng.poisson(np.clip(x, 0, None) * photons).astype(np.float32) / photons
    x = x + rng.normal(0, _uniform(rng, settings.read_noise), x.shape).astype(np.float32)
    return np.clip(x, 0, None) * float(rng.uniform(200, 4000))


def draw_kinds(rng: np.random.Generator, n_channels: int, settings: MultiplexSettings) -> list[str]:
    """One nuclear channel and ``n_channels − 1`` others drawn by ``settings.kind_weights``."""
    names = list(settings.kind_weights)
    p = np.array([settings.kind_weights[k] for k in names], np.float64)
    others = rng.choice(names, size=n_channels - 1, p=p / p.sum()).tolist()
    return ["nuclear"] + [str(k) for k in others]


def render_multiplex(nuclei: np.ndarray, rng: np.random.Generator, settings: MultiplexSettings | None = None,
                     n_channels: int | None = None) -> MultiplexSample:
    """A multiplexed picture of cells grown from ``nuclei`` (a real or synthetic nucleus label map)."""
    settings = settings or MultiplexSettings()
    nuclei = nuclei.astype(np.int32)
    cells = grow_cells(nuclei, rng, settings)
    n = int(cells.max(initial=0))
    if n:  # a few cells lose their nucleus out of the plane
        gone = rng.random(n + 1) < settings.anucleate
        gone[0] = False
        nuclei = np.where(gone[nuclei], 0, nuclei)
    masks = _compartments(nuclei, cells, _uniform(rng, settings.membrane_width))
    count = n_channels or int(rng.integers(settings.channels[0], settings.channels[1] + 1))
    kinds = draw_kinds(rng, count, settings)
    clean: list[np.ndarray] = []
    for kind in kinds:
        if kind == "duplicate" and clean:
            clean.append(clean[int(rng.integers(0, len(clean)))])
        else:
            clean.append(_render("empty" if kind == "duplicate" else kind, nuclei, cells, masks, rng, settings))
    image = np.stack([_acquire(s, rng, settings) for s in clean]).astype(np.float32)
    order = rng.permutation(count)
    return MultiplexSample(image[order], nuclei, cells, [kinds[i] for i in order])
