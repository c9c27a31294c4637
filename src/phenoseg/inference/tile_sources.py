"""Where the tiles of a slide are segmented: here (reading one tile ahead in a thread) or on Dask workers.

Either way the results come back in tile order as (raw image, labels, scores), or None for a tile without
tissue, and the slide pipeline merges them the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from phenoseg.inference.tiling import Tile
from phenoseg.normalise import normalise_with

# (raw image, labels (T, h, w), [scores per target]) or None for a tile without tissue
TileResult = tuple[np.ndarray, np.ndarray, list] | None


@dataclass
class TileJob:
    """What is needed to read and normalise any tile of one slide (small, picklable)."""

    path: str
    grid: object  # slide_pipeline._Grid
    channels: list[int] | None
    stats: np.ndarray  # (5, C) normalisation statistics of the slide (phenoseg.normalise)
    measure: list[int] | None = None  # the channels measured (None: all)

    def load(self, slide, t: Tile) -> tuple[np.ndarray, np.ndarray]:
        """(raw float32 tile of the measured channels, normalised tile of the segmented ones)."""
        full = self.grid.read(slide, t.ry0, t.ry1, t.rx0, t.rx1, None)
        seg = full[self.channels] if self.channels is not None else full
        raw = full[self.measure] if self.measure is not None else full
        return raw, normalise_with(seg, self.stats)


def local_results(tiles: list[Tile], load: Callable, run_tile: Callable) -> Iterator[TileResult]:
    """Segment tiles in this process; the next tissue tile is read while the network runs."""
    pool = ThreadPoolExecutor(1)
    todo = iter([t for t in tiles if t.tissue])
    ahead: deque = deque()

    def submit() -> None:
        t = next(todo, None)
        if t is not None:
            ahead.append(pool.submit(load, t))

    try:
        submit()
        for t in tiles:
            if not t.tissue:
                yield None
                continue
            raw, norm = ahead.popleft().result()
            submit()
            labels, scores = run_tile(norm)
            yield raw, labels, scores
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


_CACHE: dict = {}


def remote_tile(job: TileJob, tile: Tile, model: str, backend: str, thresholds: dict, threads: int,
                tta: bool = False) -> TileResult:
    """Run on a worker: open the slide and load the model once per worker process, segment one tile."""
    import torch

    from phenoseg.inference.segmenter import Segmenter
    from phenoseg.io.slide import open_slide

    torch.set_num_threads(max(1, threads))
    key = (str(model), backend, tta)
    if key not in _CACHE:
        seg = Segmenter(model, device="cpu", backend=backend, tta=tta)
        _CACHE[key] = (seg, seg.model_for(job.stats.shape[1]))
    seg, net = _CACHE[key]
    if ("slide", job.path) not in _CACHE:
        _CACHE[("slide", job.path)] = open_slide(job.path)
    raw, norm = job.load(_CACHE[("slide", job.path)], tile)
    labels, scores = seg.tile_function(net, thresholds, norm.shape[-2] * norm.shape[-1])(norm)
    return raw, labels, scores


def dask_results(client, threads: int = 1, window: int | None = None):
    """An executor for :func:`phenoseg.inference.slide_pipeline.segment_slide` that runs tiles on the
    workers of a ``dask.distributed`` client, keeping ``window`` tiles in flight (2 per worker by default)."""

    def run(tiles: list[Tile], job: TileJob, model: str, backend: str, thresholds: dict, tta: bool = False
            ) -> Iterator[TileResult]:
        n = window or 2 * max(1, len(client.scheduler_info().get("workers", {})))
        todo = iter([t for t in tiles if t.tissue])
        pending: deque = deque()

        def submit() -> None:
            t = next(todo, None)
            if t is not None:
                pending.append(client.submit(remote_tile, job, t, model, backend, thresholds, threads, tta,
                                             pure=False))

        try:
            for _ in range(n):
                submit()
            for t in tiles:
                if not t.tissue:
                    yield None
                    continue
                fut = pending.popleft()
                submit()
                yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    return run
