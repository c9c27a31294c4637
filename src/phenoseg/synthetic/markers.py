"""Synthetic marker images with exact per-cell positivity (method §4), vectorised in torch.

From a cell label map (and its nuclei, same ids), one marker image: a subcellular pattern (nuclear,
cytoplasmic, whole-cell or membrane; eroded or dilated by a pixel or two, with pixel drop-out and texture),
a random fraction of positive cells, per-cell levels from one intensity regime (positives and negatives
log-normal around two bases whose ratio and spreads make the populations overlap), background, spill-over
from neighbours, a Gaussian PSF and mixed Poisson–Gaussian noise y ~ P(λx)/λ + N(μ, σ²).
:class:`MarkerSettings` holds every range; :meth:`MarkerSettings.held_out` gives ranges outside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

PATTERNS = ("nuclear", "cytoplasmic", "whole-cell", "membrane")


@dataclass(frozen=True)
class MarkerSettings:
    """Ranges (low, high) the generator draws from, uniformly unless noted."""

    positive_fraction: tuple[float, float] = (0.03, 0.75)
    negative_ratio: tuple[float, float] = (0.0, 0.45)  # negative base level / positive base level
    spread: tuple[float, float] = (0.15, 0.55)  # log-normal sigma of per-cell levels
    background: tuple[float, float] = (0.0, 0.35)  # × positive base
    spill: tuple[float, float] = (0.0, 0.3)  # fraction of the signal spread to neighbours
    spill_sigma: tuple[float, float] = (1.5, 6.0)
    psf_sigma: tuple[float, float] = (0.4, 2.0)  # px at 0.5 µm/px
    photons: tuple[float, float] = (2.0, 300.0)  # λ per unit signal (log-uniform)
    read_noise: tuple[float, float] = (0.0, 0.08)  # σ × positive base
    dropout: tuple[float, float] = (0.0, 0.45)
    membrane_width: tuple[int, int] = (1, 3)
    morph: tuple[int, int] = (-1, 1)  # erosion (< 0) / dilation (> 0) of the pattern, px
    patterns: tuple[str, ...] = PATTERNS

    def held_out(self) -> MarkerSettings:
        """Imaging outside the training ranges (blur, photon and read noise, spill, background, drop-out,
        rarer / commoner positives); the two populations' levels drawn as in training."""
        return replace(self, positive_fraction=(0.01, 0.9), background=(0.35, 0.5), spill=(0.3, 0.4),
                       spill_sigma=(6.0, 8.0), psf_sigma=(2.0, 2.6), photons=(1.0, 2.0), read_noise=(0.08, 0.12),
                       dropout=(0.45, 0.55))

    def overlapping(self) -> MarkerSettings:
        """:meth:`held_out` with populations that overlap more than any training set (a stress test: many
        cells' latent levels lie on the other side, so no method can call them right)."""
        return replace(self.held_out(), negative_ratio=(0.45, 0.6), spread=(0.55, 0.7))


def _u(gen: torch.Generator, pair: tuple[float, float]) -> float:
    return float(pair[0] + (pair[1] - pair[0]) * torch.rand((), generator=gen))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (H, W) or (B, 1, H, W) (reflect padding)."""
    if sigma <= 0.05:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    y = x[None, None] if x.ndim == 2 else x
    y = F.pad(y, [r, r, r, r], mode="reflect")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return y[0, 0] if x.ndim == 2 else y


def same_label_within(labels: torch.Tensor, radius: int) -> torch.Tensor:
    """(H, W) bool: every pixel within ``radius`` (a square) has the pixel's label (interior at that depth)."""
    if radius <= 0:
        return torch.ones_like(labels, dtype=torch.bool)
    lab = labels.float()[None, None]
    k = 2 * radius + 1
    hi = F.max_pool2d(F.pad(lab, [radius] * 4, mode="replicate"), k, 1)
    lo = -F.max_pool2d(F.pad(-lab, [radius] * 4, mode="replicate"), k, 1)
    return (hi == lo)[0, 0]


def dilate_labels(labels: torch.Tensor, radius: int) -> torch.Tensor:
    """Labels grown by ``radius`` px into the background (the largest id wins a contested pixel)."""
    if radius <= 0:
        return labels
    lab = labels.float()[None, None]
    grown = F.max_pool2d(F.pad(lab, [radius] * 4), 2 * radius + 1, 1)[0, 0].to(labels.dtype)
    return torch.where(labels > 0, labels, grown)


def pattern_mask(cells: torch.Tensor, nuclei: torch.Tensor, pattern: str, gen: torch.Generator,
                 settings: MarkerSettings) -> torch.Tensor:
    """(H, W) long: the id of the cell whose marker compartment covers each pixel (0: none)."""
    if pattern == "nuclear":
        own = nuclei if bool((nuclei > 0).any()) else torch.where(same_label_within(cells, 3), cells, 0)
    elif pattern == "cytoplasmic":
        own = torch.where(nuclei > 0, 0, cells)
    elif pattern == "membrane":
        w = int(torch.randint(settings.membrane_width[0], settings.membrane_width[1] + 1, (), generator=gen))
        own = torch.where(same_label_within(cells, w), 0, cells)
    else:
        own = cells
    m = int(torch.randint(settings.morph[0], settings.morph[1] + 1, (), generator=gen))
    if m < 0:
        own = torch.where(same_label_within(own, -m), own, 0)
    elif m > 0:
        own = dilate_labels(own, m)
    return own


def render_marker(cells: np.ndarray | torch.Tensor, nuclei: np.ndarray | torch.Tensor | None = None,
                  gen: torch.Generator | None = None, settings: MarkerSettings | None = None,
                  pattern: str | None = None, regime: dict | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """One marker image of the cells: returns (image (H, W) float32, positive (N + 1,) bool indexed by cell id,
    the drawn parameters). ``regime`` (from an earlier call's parameters) reuses a set's intensity regime."""
    settings = settings or MarkerSettings()
    gen = gen or torch.Generator().manual_seed(0)
    cells_t = torch.as_tensor(np.asarray(cells, np.int64))
    nuc_t = torch.as_tensor(np.asarray(nuclei, np.int64)) if nuclei is not None else torch.zeros_like(cells_t)
    n = int(cells_t.max()) if cells_t.numel() else 0
    if pattern is None:
        pattern = settings.patterns[int(torch.randint(len(settings.patterns), (), generator=gen))]
    p = {k: v for k, v in regime.items() if k != "level"} if regime else {
        "positive_fraction": _u(gen, settings.positive_fraction), "negative_ratio": _u(gen, settings.negative_ratio),
        "spread": _u(gen, settings.spread), "background": _u(gen, settings.background),
        "spill": _u(gen, settings.spill), "spill_sigma": _u(gen, settings.spill_sigma),
        "psf_sigma": _u(gen, settings.psf_sigma),
        "photons": math.exp(_u(gen, (math.log(settings.photons[0]), math.log(settings.photons[1])))),
        "read_noise": _u(gen, settings.read_noise), "dropout": _u(gen, settings.dropout)}
    p["pattern"] = pattern
    positive = torch.rand(n + 1, generator=gen) < p["positive_fraction"]
    positive[0] = False
    base = torch.where(positive, 1.0, p["negative_ratio"])
    level = base * torch.exp(p["spread"] * torch.randn(n + 1, generator=gen))
    level[0] = 0.0
    own = pattern_mask(cells_t, nuc_t, pattern, gen, settings)
    keep = (torch.rand(own.shape, generator=gen) >= p["dropout"]).float()
    texture = 1.0 + 0.3 * gaussian_blur(torch.randn(own.shape, generator=gen), 1.0)
    signal = level[own] * keep * texture.clamp_min(0.0)
    signal = signal + p["spill"] * gaussian_blur(signal, p["spill_sigma"])
    h, w = own.shape
    yy = torch.linspace(-1, 1, h)[:, None]
    xx = torch.linspace(-1, 1, w)[None, :]
    tilt = 1.0 + 0.3 * (float(torch.rand((), generator=gen)) - 0.5) * (yy + xx)
    x = gaussian_blur(signal, p["psf_sigma"]) + p["background"] * tilt
    lam = p["photons"]
    y = torch.poisson(x.clamp_min(0.0) * lam, generator=gen) / lam
    y = y + p["read_noise"] * torch.randn(y.shape, generator=gen)
    p["level"] = level.numpy()  # each cell's latent level (before pattern, optics and noise), by id
    return y.float().numpy(), positive.numpy(), p
