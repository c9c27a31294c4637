"""Fixed fields of view centred on objects, as a crop classifier reads them (method §3).

The image and labels are brought to the classifier's pixel size once; each object's crop is then a gather
(no per-object Python loop): the image channels, then the object's own mask and its neighbours' mask.
Outside the image the crop is 0 (image and masks alike).
"""

from __future__ import annotations

import numpy as np

from phenoseg.normalise import percentile_normalise
from phenoseg.preprocess import resample_image, resize_labels


def scale_image(data: np.ndarray, mode: str, percentiles: tuple[float, float] = (1.0, 99.8)) -> np.ndarray:
    """(C, Y, X) → float32 in about [0, 1]: ``range`` divides an integer image by its type's maximum (8-bit
    colours keep their absolute values; a float image already in [0, 1] is kept), anything else (and
    ``percentile``) is scaled per channel between its percentiles."""
    if mode == "range":
        if np.issubdtype(data.dtype, np.integer):
            top = 255.0 if data.max(initial=0) <= 255 else float(np.iinfo(data.dtype).max)
            return data.astype(np.float32) / np.float32(top)
        finite = data[np.isfinite(data)]
        if finite.size and finite.min() >= 0 and finite.max() <= 1.0:
            return np.nan_to_num(data.astype(np.float32))
        if finite.size and finite.min() >= 0 and finite.max() <= 255.0:
            return np.nan_to_num(data.astype(np.float32) / 255.0)
    return np.nan_to_num(percentile_normalise(data.astype(np.float32), *percentiles)).astype(np.float32)


def to_pixel_size(image: np.ndarray, labels: np.ndarray, pixel_size_um: float, target_um: float
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Image (C, Y, X, already scaled) and labels resampled from ``pixel_size_um`` to ``target_um``;
    returns them and the factor (target pixels per source pixel)."""
    factor = pixel_size_um / target_um
    if abs(factor - 1.0) < 1e-3:
        return image, labels, 1.0
    img = resample_image(image, factor)
    lab = resize_labels(labels, img.shape[-2:])
    return img, lab, img.shape[-1] / image.shape[-1]


def gather_crops(image: np.ndarray, labels: np.ndarray, ids: np.ndarray, cy: np.ndarray, cx: np.ndarray,
                 size: int, masks: list[str]) -> np.ndarray:
    """(N, C + len(masks), size, size) float32 crops centred on (``cy``, ``cx``) (pixels of ``image``); mask
    channels ``object`` (label == id) and ``neighbours`` (another object)."""
    c = image.shape[0]
    n = len(ids)
    out = np.zeros((n, c + len(masks), size, size), np.float32)
    if n == 0:
        return out
    h, w = labels.shape
    half = size // 2
    y0 = np.rint(np.asarray(cy)).astype(np.int64) - half
    x0 = np.rint(np.asarray(cx)).astype(np.int64) - half
    rows = y0[:, None] + np.arange(size)  # (N, S)
    cols = x0[:, None] + np.arange(size)
    ry, rx = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    inside = ry[:, :, None] & rx[:, None, :]
    yi, xi = np.clip(rows, 0, h - 1)[:, :, None], np.clip(cols, 0, w - 1)[:, None, :]
    for k in range(c):
        out[:, k] = np.where(inside, image[k][yi, xi], 0.0)
    lab = np.where(inside, labels[yi, xi], 0)
    for j, m in enumerate(masks):
        own = lab == np.asarray(ids)[:, None, None]
        out[:, c + j] = own if m == "object" else (lab > 0) & ~own
    return out


def object_crops(image: np.ndarray, labels: np.ndarray, ids: np.ndarray, cy: np.ndarray, cx: np.ndarray,
                 pixel_size_um: float | None, config, batch: int = 512):
    """Yield (rows, crops) batches for a classifier ``config`` (its pixel size, crop size, masks and
    normalisation): ``image`` (C, Y, X) and ``labels`` on one grid of ``pixel_size_um`` (None: assumed to
    be the classifier's), centroids in that grid's pixels."""
    scaled = scale_image(image, config.normalise, tuple(config.norm_percentiles))
    px = config.pixel_size_um if pixel_size_um is None else pixel_size_um
    img, lab, f = to_pixel_size(scaled, labels, px, config.pixel_size_um)
    ty = (np.asarray(cy, np.float64) + 0.5) * f - 0.5
    tx = (np.asarray(cx, np.float64) + 0.5) * f - 0.5
    for s in range(0, len(ids), batch):
        sl = slice(s, s + batch)
        yield np.arange(s, min(s + batch, len(ids))), gather_crops(img, lab, ids[sl], ty[sl], tx[sl],
                                                                   config.crop_px, config.mask_channels)
