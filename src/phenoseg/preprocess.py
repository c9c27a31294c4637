"""Preparing images for a model (foundation: imports nothing of phenoseg): percentile normalisation (one
implementation, bounds computed once per image or slide), resampling between an image's grid and a model's
pixel size, padding, and labels back to the input's grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


def percentile_bounds_tensor(x: torch.Tensor, low: float = 0.1, high: float = 99.9
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (low, high) percentiles (float64) of a (C, H, W) tensor: the one normalisation statistic.

    Taken on every ``H // 1024``-th row and ``W // 1024``-th column (at most ~1 M samples per channel);
    a constant channel gets ``hi = lo + 1``. TorchScript-compatible (the exported pipeline uses it)."""
    h, w = x.shape[-2], x.shape[-1]
    sample = x[:, :: max(1, h // 1024), :: max(1, w // 1024)].reshape(x.shape[0], -1).to(torch.float64)
    q = torch.tensor([low / 100.0, high / 100.0], dtype=torch.float64, device=x.device)
    bounds = torch.quantile(sample, q, dim=1)
    lo, hi = bounds[0], bounds[1]
    hi = torch.where(hi <= lo, lo + 1.0, hi)
    return lo, hi


def scale_channels(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(x − lo) / (hi − lo) per channel in float32 (bounds rounded once from float64): the one formula used
    by whole images, slide tiles, training data and the exported pipeline alike."""
    scale = (1.0 / (hi.to(torch.float64) - lo.to(torch.float64))).to(torch.float32)
    lo32 = lo.to(torch.float32)
    return (x.to(torch.float32) - lo32[:, None, None]) * scale[:, None, None]


def percentile_normalise_tensor(x: torch.Tensor, low: float = 0.1, high: float = 99.9) -> torch.Tensor:
    """A (C, H, W) tensor normalised by its own percentile bounds (TorchScript-compatible)."""
    lo, hi = percentile_bounds_tensor(x, low, high)
    return scale_channels(x, lo, hi)


def percentile_bounds(x: np.ndarray, low: float = 0.1, high: float = 99.9) -> tuple[np.ndarray, np.ndarray]:
    """:func:`percentile_bounds_tensor` of a (C, H, W) array, as float64 arrays: computed once per image or
    slide (from its thumbnail), then applied to every tile with :func:`normalise_with`."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    lo, hi = percentile_bounds_tensor(t, low, high)
    return lo.numpy(), hi.numpy()


def normalise_with(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(x − lo) / (hi − lo) per channel of a (C, H, W) array, float32 (:func:`scale_channels`)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    lo_t, hi_t = torch.from_numpy(np.asarray(lo, np.float64)), torch.from_numpy(np.asarray(hi, np.float64))
    return scale_channels(t, lo_t, hi_t).numpy()


def percentile_normalise(data: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """A (C, H, W) array normalised by its own percentile bounds (float32)."""
    x = np.ascontiguousarray(data, dtype=np.float32)
    return normalise_with(x, *percentile_bounds(x, low, high))


@dataclass
class Prepared:
    """An image made ready for a model: normalised, at the model's pixel size."""

    data: np.ndarray  # (C, h, w) float32
    factor: float  # model px per input px (input pixel size / model pixel size)
    lo: np.ndarray
    hi: np.ndarray


def prepare(data: np.ndarray, pixel_size_um: float, model_pixel_size_um: float,
            percentiles: tuple[float, float] | list[float] = (0.1, 99.9),
            bounds: tuple[np.ndarray, np.ndarray] | None = None) -> Prepared:
    """Normalise a (C, Y, X) image (with ``bounds`` when given, else its own percentiles) and resample it to
    the model's pixel size. Used by inference, training data, benchmarks and slides alike."""
    x = np.ascontiguousarray(data, dtype=np.float32)  # converted once, for the statistics and the scaling
    lo, hi = bounds if bounds is not None else percentile_bounds(x, *percentiles)
    factor = float(pixel_size_um) / float(model_pixel_size_um)
    normalised = normalise_with(x, lo, hi)
    return Prepared(resample_image(normalised, factor), factor, np.asarray(lo), np.asarray(hi))


def resample_image(data: np.ndarray, factor: float) -> np.ndarray:
    """Scale a (C, Y, X) float image by ``factor`` (bilinear, anti-aliased when shrinking)."""
    if abs(factor - 1.0) < 1e-3:
        return data
    h, w = data.shape[-2:]
    return resample_to(data, (max(1, round(h * factor)), max(1, round(w * factor))), factor < 1.0)


def resample_to(data: np.ndarray, size: tuple[int, int], antialias: bool) -> np.ndarray:
    """A (C, Y, X) image resized to ``size`` (bilinear, pixel centres aligned), float32."""
    t = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None]
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False, antialias=antialias)[0].numpy()


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image (..., H, W) to ``shape`` (pixel centres aligned)."""
    h, w = labels.shape[-2:]
    if (h, w) == tuple(shape):
        return labels
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return labels[..., rows[:, None], cols[None, :]]


def bilinear_axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the two input indices around it and the weight of the second (centres aligned)."""
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    return np.clip(i0, 0, n_in - 1), np.clip(i0 + 1, 0, n_in - 1), frac


def upsample_labels(labels: np.ndarray, shape: tuple[int, int], rows_per_chunk: int = 512) -> np.ndarray:
    """Resize a label image to a finer grid with smooth outlines: each output pixel takes the label with the
    largest bilinear weight among its four nearest input pixels (a "bilinear vote", not a blocky copy).

    Falls back to :func:`resize_labels` unless both sides grow. Works in bands of ``rows_per_chunk`` rows,
    so memory stays a few times one band.
    """
    h, w = labels.shape
    out_h, out_w = int(shape[0]), int(shape[1])
    if out_h < h or out_w < w or (out_h, out_w) == (h, w):
        return resize_labels(labels, (out_h, out_w))
    ya, yb, fy = bilinear_axis(out_h, h)
    xa, xb, fx = bilinear_axis(out_w, w)
    out = np.empty((out_h, out_w), labels.dtype)
    for r in range(0, out_h, rows_per_chunk):
        rows = slice(r, min(out_h, r + rows_per_chunk))
        lo, hi = int(ya[rows].min()), int(yb[rows].max()) + 1
        band_a = np.take(labels[lo:hi], xa, axis=1)  # columns first, on the few input rows of this band
        band_b = np.take(labels[lo:hi], xb, axis=1)
        ta, tb = ya[rows] - lo, yb[rows] - lo
        cand = (np.take(band_a, ta, axis=0), np.take(band_b, ta, axis=0),
                np.take(band_a, tb, axis=0), np.take(band_b, tb, axis=0))
        best = cand[0].copy()
        mixed = (cand[0] != cand[1]) | (cand[0] != cand[2]) | (cand[0] != cand[3])  # near an outline
        if mixed.any():
            c = [x[mixed] for x in cand]
            yw = np.broadcast_to(fy[rows][:, None], mixed.shape)[mixed]
            xw = np.broadcast_to(fx[None, :], mixed.shape)[mixed]
            weight = ((1 - yw) * (1 - xw), (1 - yw) * xw, yw * (1 - xw), yw * xw)
            pick = c[0].copy()
            pick_score = np.full(pick.shape, -1.0, np.float32)
            for a in range(4):
                score = sum(np.where(c[a] == c[b], weight[b], np.float32(0)) for b in range(4))
                better = score > pick_score
                pick[better] = c[a][better]
                pick_score[better] = score[better]
            best[mixed] = pick
        out[rows] = best
    return out


def pad_to_multiple(t: torch.Tensor, multiple: int, minimum: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) at the bottom/right so H and W are multiples of ``multiple``."""
    h, w = t.shape[-2:]
    ph = max(minimum, -(-h // multiple) * multiple) - h
    pw = max(minimum, -(-w // multiple) * multiple) - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        t = F.pad(t, [0, pw, 0, ph], mode=mode)
    return t, (h, w)
