"""The one tiling engine, for images in memory and whole slides alike.

- **Grid** (:func:`plan_tiles`): cores of equal size (on the network's stride grid) cover the image once;
  every tile is read through a window of one fixed shape (core + ``overlap`` of context each side, shifted
  inwards at the image's edges and started on the stride grid, so a tile sees exactly the features of an
  untiled run and the network's memory is the same for every tile).
- **Ownership** (:func:`owned_objects`): an object belongs to the tile whose core holds its centre; the
  owning tile sees the whole object as long as it is smaller than the overlap (method §1.6), so nothing is
  cut at a seam and nothing is duplicated.
- **Paste / relabel** (:func:`paste_owned`): owned objects get consecutive global ids; where two kept objects
  claim a pixel, the first one keeps it.

StarDist's ``big.py`` keeps ownership in one place the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from phenoseg.phenotype.table import object_centroids


@dataclass(frozen=True)
class Tile:
    """Core [cy0:cy1, cx0:cx1] and read window [ry0:ry1, rx0:rx1], in tile row ``row``."""

    row: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int
    ry0: int
    ry1: int
    rx0: int
    rx1: int
    tissue: bool = True

    @property
    def core(self) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the core."""
        return self.cy0, self.cy1, self.cx0, self.cx1


CHANNELS_PER_FULL_TILE = 4  # a ChannelNet model given more channels gets tiles of proportionally smaller area


def channel_scaled_tile(tile: int, n_channels: int, per_channel: bool) -> int:
    """The automatic tile side for a network whose memory grows with the channel count (ChannelNet holds
    features per channel): ``tile`` up to :data:`CHANNELS_PER_FULL_TILE` channels, then area ∝ 1 / channels."""
    if not per_channel or n_channels <= CHANNELS_PER_FULL_TILE:
        return tile
    return max(256, int(tile * (CHANNELS_PER_FULL_TILE / n_channels) ** 0.5) // 64 * 64)


def balanced_core(n: int, tile: int, stride: int) -> int:
    """Core size for ``n`` px in tiles of about ``tile``: equal cores (2048 px with tile 1536 gives two
    cores of 1024, not 1536 + 512), rounded up to a multiple of the network's stride."""
    core = -(-n // -(-n // tile))
    return -(-core // stride) * stride


def read_span(c0: int, c1: int, n: int, window: int, stride: int) -> tuple[int, int]:
    """The read window of core [c0, c1): ``window`` px long whatever the core, centred on the core, shifted
    inwards at the image's edges, and starting on the network's stride grid. The core gets at least
    (window − core) / 2 px of context on each side."""
    length = min(window, n)
    last = -(-max(0, n - length) // stride) * stride
    start = ((c0 - (length - (c1 - c0)) // 2) // stride) * stride
    start = min(max(0, start), last)
    return start, min(n, start + length)


def plan_tiles(height: int, width: int, tile: int, overlap: int, stride: int = 1,
               has_tissue: Callable[[int, int, int, int], bool] | None = None) -> list[Tile]:
    """Every tile of a ``height`` × ``width`` image in row-major order (``tile`` rounded down to the stride)."""
    tile = max(stride, (tile // stride) * stride)
    th, tw = balanced_core(height, tile, stride), balanced_core(width, tile, stride)
    window = tile + 2 * overlap
    tiles = []
    for r, cy0 in enumerate(range(0, height, th)):
        cy1 = min(cy0 + th, height)
        ry0, ry1 = read_span(cy0, cy1, height, window, stride)
        for cx0 in range(0, width, tw):
            cx1 = min(cx0 + tw, width)
            rx0, rx1 = read_span(cx0, cx1, width, window, stride)
            tissue = True if has_tissue is None else has_tissue(ry0, ry1, rx0, rx1)
            tiles.append(Tile(r, cy0, cy1, cx0, cx1, ry0, ry1, rx0, rx1, tissue))
    return tiles


def owned_objects(labels: np.ndarray, ry0: int, rx0: int, core: tuple[int, int, int, int]) -> np.ndarray:
    """Ids (1..n) of the objects of a tile's ``labels`` (read at row ``ry0``, column ``rx0``) whose centre
    lies in the tile's core (y0, y1, x0, x1)."""
    if int(labels.max(initial=0)) == 0:
        return np.zeros(0, np.int64)
    area, cy, cx = object_centroids(labels)
    cy, cx = cy + ry0, cx + rx0
    cy0, cy1, cx0, cx1 = core
    own = (area > 0) & (cy >= cy0 - 0.5) & (cy < cy1 - 0.5) & (cx >= cx0 - 0.5) & (cx < cx1 - 0.5)
    own[0] = False
    return np.flatnonzero(own)


def owned_per_target(labels: np.ndarray, ry0: int, rx0: int, core: tuple[int, int, int, int],
                     pair: list[int] | None = None) -> list[np.ndarray]:
    """:func:`owned_objects` of every target of a tile's (T, h, w) labels. With ``pair`` = [nuclei, cells]
    (matched labels: a nucleus has its cell's id) the cell's ownership decides for its nucleus too."""
    nucleus = pair[0] if pair else -1
    kept = [owned_objects(labels[k], ry0, rx0, core) if k != nucleus else None for k in range(labels.shape[0])]
    if pair:
        kept[nucleus] = kept[pair[1]]
    return kept


def outside_cell(nuclei: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Pasted nucleus pixels their own cell does not hold (an earlier tile took them): to be cleared, so
    nuclei stay inside their cells."""
    return (nuclei > 0) & (cells != nuclei)


def paste_owned(region: np.ndarray, labels: np.ndarray, kept: np.ndarray, first: int) -> np.ndarray:
    """Write the ``kept`` objects of a tile's ``labels`` into ``region`` (the same pixels of the output,
    a view) as ids ``first``, ``first + 1``, …, only where ``region`` is still 0. Returns the tile's labels
    of the pasted pixels renumbered 1..k (what was actually placed, for the per-object passes)."""
    n = max(int(labels.max(initial=0)), int(kept.max(initial=0)))  # ``labels`` may be a part of the tile
    new_ids = np.zeros(n + 1, np.int64)
    new_ids[kept] = np.arange(first, first + kept.size)
    mapped = new_ids[labels.astype(np.int64)]
    free = (region == 0) & (mapped > 0)
    region[free] = mapped[free]
    return np.where((region >= first) & (region < first + kept.size), region.astype(np.int64) - first + 1, 0)


TileFunction = Callable[[np.ndarray], tuple]  # crop → (labels, scores) or (labels, scores, strength)


def segment_tiled(
    image: np.ndarray,
    segment_tile: TileFunction,
    tile: int = 1024,
    overlap: int = 80,
    stride: int = 1,
    progress: Callable[[int, int], None] | None = None,
    pair: list[int] | None = None,
) -> tuple:
    """Segment a normalised (C, H, W) image tile by tile.

    ``segment_tile`` maps a (C, h, w) crop to (labels (T, h, w) 1..n per target, [scores (n,)] per target),
    optionally with a third item, the membership strength (T, h, w). Returns global labels (T, H, W) uint32
    numbered 1..N per target in tile order and their scores (and the strength, stitched so every pixel has
    the value of the tile its object, or for background its core, came from). With ``pair`` = [nuclei,
    cells] target indices (matched labels) a nucleus keeps its cell's global id.
    """
    _, h, w = image.shape
    tiles = plan_tiles(h, w, tile, overlap, stride)
    out: np.ndarray | None = None
    strength: np.ndarray | None = None
    scores: list[list[np.ndarray]] = []
    next_label: list[int] = []
    for i, t in enumerate(tiles):
        result = segment_tile(image[:, t.ry0 : t.ry1, t.rx0 : t.rx1])
        labels, tile_scores = result[0], result[1]
        soft = result[2] if len(result) > 2 else None
        if out is None:
            out = np.zeros((labels.shape[0], h, w), np.uint32)
            strength = np.zeros((labels.shape[0], h, w), np.float32) if soft is not None else None
            scores = [[] for _ in range(labels.shape[0])]
            next_label = [1] * labels.shape[0]
        owned = owned_per_target(labels, t.ry0, t.rx0, t.core, pair)
        core = (slice(t.cy0 - t.ry0, t.cy1 - t.ry0), slice(t.cx0 - t.rx0, t.cx1 - t.rx0))
        for k in range(labels.shape[0]):
            kept = owned[k]
            window = out[k, t.ry0 : t.ry1, t.rx0 : t.rx1]
            if kept.size:
                placed = paste_owned(window, labels[k], kept, next_label[k])
                sc = np.asarray(tile_scores[k])
                scores[k].append(sc[kept - 1] if len(sc) >= int(labels[k].max()) else np.zeros(kept.size))
                next_label[k] += kept.size
                if strength is not None:
                    strength[k, t.ry0 : t.ry1, t.rx0 : t.rx1][placed > 0] = soft[k][placed > 0]
            if strength is not None:  # background of the core: this tile's (sub-threshold) evidence
                bg = window[core] == 0
                strength[k, t.ry0 : t.ry1, t.rx0 : t.rx1][core][bg] = soft[k][core][bg]
        if pair:
            nuc = out[pair[0], t.ry0 : t.ry1, t.rx0 : t.rx1]
            nuc[outside_cell(nuc, out[pair[1], t.ry0 : t.ry1, t.rx0 : t.rx1])] = 0
        if progress is not None:
            progress(i + 1, len(tiles))
    assert out is not None
    stitched = [np.concatenate(s) if s else np.zeros(0) for s in scores]
    return (out, stitched) if strength is None else (out, stitched, strength)
