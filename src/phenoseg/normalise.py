"""Robust per-channel normalisation (foundation: imports nothing of phenoseg), one implementation for whole
images, slide tiles, training data and the exported TorchScript pipeline.

The statistics of a (C, H, W) image are five rows per channel (:data:`STAT_ROWS`): the low / high
percentiles that map to 0 / 1, the range of trusted values, and the fill for missing pixels. Trusted values
leave out what would otherwise capture the extreme percentiles and dim (or wash out) every nucleus:

- non-finite pixels (NaN padding of registered or stitched images);
- a pile of identical values at the channel's minimum or maximum (saturation, clipping, ink, hot or dead
  pixels, a black border): real tissue never puts ≥ 0.01 % of its pixels on exactly the extreme value;
- values beyond fences set by the bulk of the distribution (piles left out): above q99 + 3·(q99 − q50)
  (a saturated spot, bright dust, hot pixels of a 16-bit camera) or below q1 − 0.5·(q50 − q1) (ink, dark
  dust, folds).

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


def _quantile(v: torch.Tensor, q: float) -> torch.Tensor:
    """Quantile ``q`` of a sorted 1-D tensor (linear interpolation, as :func:`torch.quantile`)."""
    pos = q * (v.numel() - 1)
    i = int(pos)
    j = min(i + 1, v.numel() - 1)
    return v[i] + (pos - i) * (v[j] - v[i])


def _channel_stats(v: torch.Tensor, low: float, high: float, fence_high: float, fence_low: float,
                   pile_fraction: float) -> torch.Tensor:
    """The five statistics of one channel from its sorted finite samples ``v``: the trusted values are one
    slice of ``v`` (piles and fenced-off values sit at its ends)."""
    n = v.numel()
    if n == 0:
        return torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64, device=v.device)
    pile = max(2.0, n * pile_fraction)
    a, b = 0, n
    n_small = int(torch.searchsorted(v, v[:1], right=True)[0])
    n_big = n - int(torch.searchsorted(v, v[-1:], right=False)[0])
    if n_small >= pile:
        a = n_small
    if n_big >= pile:
        b = n - n_big
    # fences from the values left once piles are out: a large flat background (a slide thumbnail that is
    # mostly glass, an empty region) would otherwise set the median and q99 and fence off real bright cells
    body = v[a:b] if b > a else v
    q1, q50, q99 = _quantile(body, 0.01), _quantile(body, 0.5), _quantile(body, 0.99)
    upper_fence = (q99 + fence_high * (q99 - q50)).reshape(1)
    lower_fence = (q1 - fence_low * (q50 - q1)).reshape(1)
    b = min(b, int(torch.searchsorted(v, upper_fence, right=True)[0]))
    a = max(a, int(torch.searchsorted(v, lower_fence, right=False)[0]))
    if b <= a:  # e.g. a constant channel: every value is a pile
        a, b = 0, n
    t = v[a:b]
    lo, hi, fill = _quantile(t, low / 100.0), _quantile(t, high / 100.0), _quantile(t, 0.5)
    if not bool(hi > lo):
        hi = lo + 1.0
    return torch.stack([lo, hi, t[0], t[-1], fill])


def normalisation_stats_tensor(x: torch.Tensor, low: float = 0.1, high: float = 99.9, fence_high: float = FENCE_HIGH,
                               fence_low: float = FENCE_LOW,
                               pile_fraction: float = PILE_FRACTION) -> torch.Tensor:
    """(5, C) float64 statistics (:data:`STAT_ROWS`) of a (C, H, W) tensor (TorchScript-compatible).

    Taken on every ``H // 1024``-th row and ``W // 1024``-th column (at most ~1 M samples per channel). A
    constant channel gets ``hi = lo + 1``; a channel without a finite pixel gets 0 / 1."""
    h, w = x.shape[-2], x.shape[-1]
    s = x[:, :: max(1, h // 1024), :: max(1, w // 1024)].reshape(x.shape[0], -1)
    rows: list[torch.Tensor] = []
    for c in range(s.shape[0]):
        v = s[c]
        if not bool(torch.isfinite(torch.amax(v) + torch.amin(v))):
            v = v[torch.isfinite(v)]
        v = torch.sort(v.to(torch.float32)).values.to(torch.float64)  # float32 sorts faster (images arrive as float32)
        rows.append(_channel_stats(v, low, high, fence_high, fence_low, pile_fraction))
    return torch.stack(rows, dim=1)


def _scale_(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(y − lo) / (hi − lo) per channel, in place on a float32 tensor (bounds rounded once from float64)."""
    scale = (1.0 / (hi.to(torch.float64) - lo.to(torch.float64))).to(torch.float32)
    return y.sub_(lo.to(torch.float32)[:, None, None]).mul_(scale[:, None, None])


def scale_channels(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(x − lo) / (hi − lo) per channel in float32 (the plain scaling, on a copy of ``x``)."""
    return _scale_(x.to(dtype=torch.float32, copy=True), lo, hi)


def normalise_tensor(x: torch.Tensor, stats: torch.Tensor, max_despeckle: float = MAX_DESPECKLE) -> torch.Tensor:
    """A (C, H, W) tensor normalised with :func:`normalisation_stats_tensor` statistics, float32: missing
    pixels filled, bright untrusted ones replaced by their 3 × 3 median, all clamped to the trusted range,
    then scaled (TorchScript-compatible; ``x`` itself is left as it was)."""
    s32 = stats.to(torch.float32)
    lower, upper, fill = s32[2][:, None, None], s32[3][:, None, None], s32[4][:, None, None]
    y = x.to(dtype=torch.float32, copy=True)
    if x.is_floating_point() and not bool(torch.isfinite(torch.amax(y) + torch.amin(y))):  # NaN / inf somewhere
        y = torch.where(torch.isfinite(y), y, fill.expand_as(y))
    if bool((torch.amax(y, dim=(1, 2)) > s32[3]).any()):  # values above the trusted range: how many?
        hot = y > upper
        n_hot = int(torch.count_nonzero(hot))
        if n_hot <= max_despeckle * y.numel():  # a few bright outliers (hot pixels): their 3 × 3 median
            idx = hot.nonzero()
            c, yy, xx = idx[:, 0], idx[:, 1], idx[:, 2]
            padded = F.pad(y[None], [1, 1, 1, 1], mode="replicate")[0]
            around: list[torch.Tensor] = []
            for dy in range(3):
                for dx in range(3):
                    around.append(padded[c, yy + dy, xx + dx])
            y[c, yy, xx] = torch.stack(around).median(dim=0).values
    return _scale_(torch.clamp_(y, lower, upper), stats[0], stats[1])


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
