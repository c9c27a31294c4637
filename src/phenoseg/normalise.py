"""Robust per-channel normalisation (foundation: imports nothing of phenoseg), one implementation for whole
images, slide tiles, training data and the exported TorchScript pipeline.

The statistics of a (C, H, W) image are five rows per channel (:data:`STAT_ROWS`): the low / high
percentiles that map to 0 / 1, the range of trusted values, and the fill for missing pixels. Trusted values
leave out what would otherwise capture the extreme percentiles and dim (or wash out) every nucleus:

- non-finite pixels (NaN padding of registered or stitched images);
- a pile of identical values at the channel's minimum or maximum (saturation, clipping, ink, hot or dead
  pixels, a black border): real tissue never puts ≥ 0.01 % of its pixels on exactly the extreme value;
- values beyond fences set by the bulk of the distribution: above q99 + 3·(q99 − q50) (a saturated spot,
  bright dust, hot pixels of a 16-bit camera) or below q1 − 0.5·(q50 − q1) (ink, dark dust, folds).

When normalising, bright untrusted pixels take the median of their 3 × 3 neighbourhood (an isolated hot
pixel vanishes), values are clamped to the trusted range (a saturated spot becomes merely bright) and missing
pixels take the fill (the channel's median). A clean image's percentiles are the plain ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

FENCE_HIGH = 3.0
FENCE_LOW = 0.5  # dark artefacts (ink, dust, folds) sit close below the darkest stain: a tighter fence
PILE_FRACTION = 1e-4  # this share of the samples (and at least 2) on exactly the extreme value is a pile
MAX_DESPECKLE = 0.01  # at most this share of pixels is despeckled (more is a bright region: clamped only)
# (TorchScript reads no module globals: the functions take these as defaults)
STAT_ROWS = ("lo", "hi", "lower", "upper", "fill")


def _nan_where(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, torch.full_like(x, float("nan")))


def normalisation_stats_tensor(x: torch.Tensor, low: float = 0.1, high: float = 99.9, fence_high: float = FENCE_HIGH,
                               fence_low: float = FENCE_LOW,
                               pile_fraction: float = PILE_FRACTION) -> torch.Tensor:
    """(5, C) float64 statistics (:data:`STAT_ROWS`) of a (C, H, W) tensor (TorchScript-compatible).

    Taken on every ``H // 1024``-th row and ``W // 1024``-th column (at most ~1 M samples per channel). A
    constant channel gets ``hi = lo + 1``; a channel without a finite pixel gets 0 / 1."""
    h, w = x.shape[-2], x.shape[-1]
    s = x[:, :: max(1, h // 1024), :: max(1, w // 1024)].reshape(x.shape[0], -1).to(torch.float64)
    finite = torch.isfinite(s)
    s = _nan_where(finite, s)
    n = finite.sum(dim=1)
    big = torch.where(finite, s, torch.full_like(s, -float("inf"))).max(dim=1).values
    small = torch.where(finite, s, torch.full_like(s, float("inf"))).min(dim=1).values
    pile = torch.clamp(n.to(torch.float64) * pile_fraction, min=2.0)
    pile_hi = (s == big[:, None]).sum(dim=1).to(torch.float64) >= pile
    pile_lo = (s == small[:, None]).sum(dim=1).to(torch.float64) >= pile
    bulk = torch.nanquantile(s, torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64, device=x.device), dim=1)
    upper_fence = bulk[2] + fence_high * (bulk[2] - bulk[1])
    lower_fence = bulk[0] - fence_low * (bulk[1] - bulk[0])
    trusted = finite & (s <= upper_fence[:, None]) & (s >= lower_fence[:, None])
    trusted = trusted & ~(pile_hi[:, None] & (s == big[:, None])) & ~(pile_lo[:, None] & (s == small[:, None]))
    none = trusted.sum(dim=1) == 0  # e.g. a constant channel: every value is a pile
    trusted = torch.where(none[:, None], finite, trusted)
    t = _nan_where(trusted, s)
    q = torch.tensor([low / 100.0, high / 100.0, 0.5], dtype=torch.float64, device=x.device)
    lo, hi, fill = torch.nanquantile(t, q, dim=1).unbind(0)
    lower = torch.where(trusted, s, torch.full_like(s, float("inf"))).min(dim=1).values
    upper = torch.where(trusted, s, torch.full_like(s, -float("inf"))).max(dim=1).values
    empty = n == 0
    zero, one = torch.zeros_like(lo), torch.ones_like(lo)
    lo, fill, lower = torch.where(empty, zero, lo), torch.where(empty, zero, fill), torch.where(empty, zero, lower)
    upper = torch.where(empty, one, upper)
    hi = torch.where(torch.isfinite(hi) & (hi > lo), hi, lo + 1.0)
    return torch.stack([lo, hi, lower, upper, fill])


def scale_channels(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(x − lo) / (hi − lo) per channel in float32 (bounds rounded once from float64)."""
    scale = (1.0 / (hi.to(torch.float64) - lo.to(torch.float64))).to(torch.float32)
    lo32 = lo.to(torch.float32)
    return (x.to(torch.float32) - lo32[:, None, None]) * scale[:, None, None]


def normalise_tensor(x: torch.Tensor, stats: torch.Tensor, max_despeckle: float = MAX_DESPECKLE) -> torch.Tensor:
    """A (C, H, W) tensor normalised with :func:`normalisation_stats_tensor` statistics, float32: missing
    pixels filled, untrusted ones replaced by their 3 × 3 median and clamped, then scaled (TorchScript)."""
    s32 = stats.to(torch.float32)
    lower, upper, fill = s32[2][:, None, None], s32[3][:, None, None], s32[4][:, None, None]
    x = x.to(torch.float32)
    x = torch.where(torch.isfinite(x), x, fill.expand_as(x))
    hot = x > upper
    n_hot = int(hot.sum())
    if 0 < n_hot <= max_despeckle * x.numel():  # a few bright outliers (hot pixels): their 3 × 3 median
        idx = hot.nonzero()
        c, yy, xx = idx[:, 0], idx[:, 1], idx[:, 2]
        padded = F.pad(x[None], [1, 1, 1, 1], mode="replicate")[0]
        around: list[torch.Tensor] = []
        for dy in range(3):
            for dx in range(3):
                around.append(padded[c, yy + dy, xx + dx])
        x = x.clone()
        x[c, yy, xx] = torch.stack(around).median(dim=0).values
    x = torch.minimum(torch.maximum(x, lower), upper)
    return scale_channels(x, stats[0], stats[1])


def normalisation_stats(x: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """:func:`normalisation_stats_tensor` of a (C, H, W) array, (5, C) float64: computed once per image or
    slide (from its thumbnail), then applied to every tile with :func:`normalise_with`."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return normalisation_stats_tensor(t, low, high).numpy()


def normalise_with(x: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """A (C, H, W) array normalised with ``stats`` (:func:`normalise_tensor`), float32."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    return normalise_tensor(t, torch.from_numpy(np.asarray(stats, np.float64))).numpy()


def percentile_normalise(data: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """A (C, H, W) array normalised by its own statistics (float32)."""
    x = np.ascontiguousarray(data, dtype=np.float32)
    return normalise_with(x, normalisation_stats(x, low, high))
