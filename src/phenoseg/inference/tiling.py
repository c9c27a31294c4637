"""Tiled inference: tiles with context overlap, each fully segmented, every object kept by exactly one tile.

An object belongs to the tile whose core (the tile without its overlap) holds the object's centre; the
owning tile sees the whole object as long as it is smaller than the overlap (80 px by default, method
§1.6), so nothing is cut at a seam and no object is duplicated. Where two kept objects claim the same
pixel, the first one keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def tile_grid(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int, int, int]]:
    """(core y0, core y1, core x0, core x1, read y0, read x0) for every tile; reads extend by ``overlap``."""
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            yield y0, min(y0 + tile, height), x0, min(x0 + tile, width), max(0, y0 - overlap), max(0, x0 - overlap)


def owned_objects(labels: np.ndarray, ry0: int, rx0: int, core: tuple[int, int, int, int]) -> np.ndarray:
    """Ids (1..n) of the objects of a tile's ``labels`` (read at row ``ry0``, column ``rx0``) whose centre
    lies in the tile's core (y0, y1, x0, x1)."""
    n = int(labels.max(initial=0))
    if n == 0:
        return np.zeros(0, np.int64)
    lab = labels.astype(np.int64).ravel()
    area = np.bincount(lab, minlength=n + 1)
    yy, xx = np.divmod(np.arange(lab.size), labels.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(lab, yy, n + 1) / area + ry0
        cx = np.bincount(lab, xx, n + 1) / area + rx0
    cy0, cy1, cx0, cx1 = core
    own = (area > 0) & (cy >= cy0 - 0.5) & (cy < cy1 - 0.5) & (cx >= cx0 - 0.5) & (cx < cx1 - 0.5)
    own[0] = False
    return np.flatnonzero(own)


def segment_tiled(
    image: np.ndarray,
    segment_tile: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    tile: int = 1024,
    overlap: int = 80,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment a normalised (C, H, W) image tile by tile.

    ``segment_tile`` maps a (C, h, w) crop to (labels (h, w) 1..n, scores (n,)). Returns global labels
    (H, W) uint32 numbered 1..N in tile order, and their scores.
    """
    _, h, w = image.shape
    out = np.zeros((h, w), np.uint32)
    scores: list[np.ndarray] = []
    next_label = 1
    tiles = list(tile_grid(h, w, tile, overlap))
    for i, (cy0, cy1, cx0, cx1, ry0, rx0) in enumerate(tiles):
        ry1, rx1 = min(h, cy1 + overlap), min(w, cx1 + overlap)
        labels, tile_scores = segment_tile(image[:, ry0:ry1, rx0:rx1])
        n = int(labels.max(initial=0))
        if n:
            new_ids = np.zeros(n + 1, np.int64)
            kept = owned_objects(labels, ry0, rx0, (cy0, cy1, cx0, cx1))
            new_ids[kept] = np.arange(next_label, next_label + kept.size)
            mapped = new_ids[labels.astype(np.int64)]
            region = out[ry0:ry1, rx0:rx1]
            free = (region == 0) & (mapped > 0)
            region[free] = mapped[free]
            scores.append(np.asarray(tile_scores)[kept - 1] if len(tile_scores) >= n else np.zeros(kept.size))
            next_label += kept.size
        if progress is not None:
            progress(i + 1, len(tiles))
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    return out, all_scores


def torch_tile_segmenter(net, decoder, device, runner, thresholds: dict):
    """A ``segment_tile`` function for :func:`segment_tiled` from a network and its decoder."""
    from phenoseg.inference.runner import network_output

    def run(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = network_output(net, crop, device, runner)
        labels, scores = decoder.decode(raw, **thresholds)
        return labels[0, 0].cpu().numpy(), scores[0][0].cpu().numpy()

    return run

