"""Preparing images for a model (foundation: imports only :mod:`phenoseg.normalise`): robust normalisation
(statistics computed once per image or slide), resampling between an image's grid and a model's
pixel size, padding, and labels back to the input's grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from phenoseg.normalise import normalisation_stats, normalise_with


@dataclass
class Prepared:
    """An image made ready for a model: normalised, at the model's pixel size."""

    data: np.ndarray  # (C, h, w) float32
    factor: float  # model px per input px (input pixel size / model pixel size)
    stats: np.ndarray  # (5, C) normalisation statistics (phenoseg.normalise.STAT_ROWS)


def prepare(data: np.ndarray, pixel_size_um: float, model_pixel_size_um: float,
            percentiles: tuple[float, float] | list[float] = (0.1, 99.9),
            stats: np.ndarray | None = None) -> Prepared:
    """Normalise a (C, Y, X) image (with ``stats`` when given, else its own; see :mod:`phenoseg.normalise`)
    and resample it to the model's pixel size. Used by inference, training data, benchmarks and slides alike."""
    x = np.ascontiguousarray(data, dtype=np.float32)  # converted once, for the statistics and the scaling
    stats = stats if stats is not None else normalisation_stats(x, *percentiles)
    factor = float(pixel_size_um) / float(model_pixel_size_um)
    return Prepared(resample_image(normalise_with(x, stats), factor), factor, np.asarray(stats))


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


def upsample_labels(labels: np.ndarray, shape: tuple[int, int], rows_per_chunk: int = 512,
                    strength: np.ndarray | None = None, threshold: float = 0.5,
                    level: float | None = None) -> np.ndarray:
    """Resize a label image to a finer grid with smooth outlines: each output pixel takes the label with the
    largest bilinear weight among its four nearest input pixels (a "bilinear vote", not a blocky copy).

    With ``strength`` (the membership probability behind each input pixel, as
    :meth:`~phenoseg.postprocess.decoder.InstanceDecoder.decode_strength` gives it) the vote is weighted by
    it and an output pixel is foreground where the interpolated strength reaches ``level`` (default
    ``threshold``, the mask threshold the labels were made with): outlines fall where the network's
    probability crosses it between pixels, not half-way between them. Falls back to :func:`resize_labels` unless both
    sides grow. Works in bands of ``rows_per_chunk`` rows, so memory stays a few times one band.
    """
    h, w = labels.shape
    out_h, out_w = int(shape[0]), int(shape[1])
    if out_h < h or out_w < w or (out_h, out_w) == (h, w):
        return resize_labels(labels, (out_h, out_w))
    level = threshold if level is None else level
    if strength is not None:  # a background pixel's evidence counts only below the threshold (else it was
        t = np.float32(threshold)  # removed on purpose: a fragment, a too-small object)
        s = strength.astype(np.float32, copy=False)
        strength = np.where(labels > 0, s, np.where(s < t, s, np.float32(0)))
        weak = (labels > 0) & (strength < level)  # object pixels a higher outline level may give up
    ya, yb, fy = bilinear_axis(out_h, h)
    xa, xb, fx = bilinear_axis(out_w, w)
    out = np.empty((out_h, out_w), labels.dtype)
    for r in range(0, out_h, rows_per_chunk):
        rows = slice(r, min(out_h, r + rows_per_chunk))
        lo, hi = int(ya[rows].min()), int(yb[rows].max()) + 1
        ta, tb = ya[rows] - lo, yb[rows] - lo
        cand = corner_values(labels[lo:hi], xa, xb, ta, tb)
        best = cand[0].copy()
        mixed = (cand[0] != cand[1]) | (cand[0] != cand[2]) | (cand[0] != cand[3])  # near an outline
        if strength is not None and level > threshold:
            mixed |= np.logical_or.reduce(corner_values(weak[lo:hi], xa, xb, ta, tb))
        if mixed.any():
            c = [x[mixed] for x in cand]
            yw = np.broadcast_to(fy[rows][:, None], mixed.shape)[mixed]
            xw = np.broadcast_to(fx[None, :], mixed.shape)[mixed]
            weight = [(1 - yw) * (1 - xw), (1 - yw) * xw, yw * (1 - xw), yw * xw]
            if strength is not None:
                weight = [wt * v[mixed] for wt, v in zip(weight, corner_values(strength[lo:hi], xa, xb, ta, tb))]
            pick = c[0].copy()
            pick_score = np.full(pick.shape, -1.0, np.float32)
            for a in range(4):
                score = sum(np.where(c[a] == c[b], weight[b], np.float32(0)) for b in range(4))
                if strength is not None:
                    score = np.where(c[a] > 0, score, np.float32(-0.5))
                better = score > pick_score
                pick[better] = c[a][better]
                pick_score[better] = score[better]
            if strength is not None:
                pick[sum(weight) < level] = 0
            best[mixed] = pick
        out[rows] = best
    return out


def corner_values(band: np.ndarray, xa: np.ndarray, xb: np.ndarray, ta: np.ndarray, tb: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four bilinear neighbours' values of every output pixel of a band (rows ``ta`` / ``tb`` of ``band``,
    columns ``xa`` / ``xb``): top-left, top-right, bottom-left, bottom-right."""
    band_a = np.take(band, xa, axis=1)  # columns first, on the few input rows of this band
    band_b = np.take(band, xb, axis=1)
    return (np.take(band_a, ta, axis=0), np.take(band_b, ta, axis=0),
            np.take(band_a, tb, axis=0), np.take(band_b, tb, axis=0))


def pad_to_multiple(t: torch.Tensor, multiple: int, minimum: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) at the bottom/right so H and W are multiples of ``multiple``."""
    h, w = t.shape[-2:]
    ph = max(minimum, -(-h // multiple) * multiple) - h
    pw = max(minimum, -(-w // multiple) * multiple) - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        t = F.pad(t, [0, pw, 0, ph], mode=mode)
    return t, (h, w)
