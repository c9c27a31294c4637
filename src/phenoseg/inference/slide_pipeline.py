"""Whole-slide segmentation with bounded memory: lazy reads, tiles with context, streamed and resumable outputs.

The slide is cut into tiles of ``tile`` px (at the model's resolution) read with ``overlap`` px of context;
each tile is fully segmented and keeps the objects whose centre lies in its core, so nothing is cut at a
seam and nothing is duplicated (first tile wins a contested pixel). Tiles run row by row; a band of rows
is held in memory and flushed to the OME-Zarr labels in whole chunk rows once no later tile can touch it.
After every tile row the band, the row's GeoJSON / table parts and a small state file are saved
atomically, so a killed run started again continues from the last finished row and ends with exactly
the result of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from shapely.geometry import box

from phenoseg.errors import PhenosegError
from phenoseg.inference.plausibility import check_pixel_size
from phenoseg.inference.tile_sources import TileJob, local_results
from phenoseg.inference.tiling import (
    Tile,
    channel_scaled_tile,
    outside_cell,
    owned_per_target,
    paste_owned,
    plan_tiles,
)
from phenoseg.inference.tissue import thumbnail, tissue_mask
from phenoseg.io.atomic import atomic_write
from phenoseg.io.omezarr import ImageWriter, LabelsWriter
from phenoseg.io.regions import points_in_shape, read_region_shape
from phenoseg.io.slide import Slide, open_slide
from phenoseg.normalise import normalisation_stats
from phenoseg.outputs.slide import ObjectWriter, finish_outputs
from phenoseg.phenotype.table import object_centroids
from phenoseg.postprocess.pairing import paired_targets
from phenoseg.preprocess import resample_to

STATE_VERSION = 1
SLIDE_TILE = 1536


@dataclass
class SlideOptions:
    """How one slide is processed (see ``phenoseg segment --help``).

    The default tile (1536 px + 2 × 80 px context) keeps peak memory near 2.5 GB with ONNX Runtime
    (benchmarks/wsi.py); larger tiles are a little faster and need more memory."""

    tile: int | None = None  # None: SLIDE_TILE, smaller for a ChannelNet model given many channels
    overlap: int = 80
    tissue_mask: bool = True
    outputs: list[str] = field(default_factory=lambda: ["zarr", "geojson", "csv"])
    pixel_size_um: float | None = None
    channels: list[int] | None = None  # segmented on (None: chosen from the thumbnail)
    measure_channels: list[int] | None = None  # measured (None: every channel)
    progress: bool = True
    resume: bool = True
    chunk: int = 512
    thresholds: dict = field(default_factory=dict)  # per-run postprocessing overrides (seed_threshold, ...)
    regions: str | None = None  # QuPath annotation GeoJSON (level-0 pixels): keep objects centred inside
    passes: list = field(default_factory=list)  # per-object passes after measurement (columns in GeoJSON / CSV)
    stop_after_tiles: int | None = None  # for tests: behave as if killed after this many tiles


@dataclass
class SlideResult:
    """What a slide run produced."""

    n_objects: dict[str, int]  # per target
    files: list[Path]
    tiles: int
    tiles_skipped: int
    seconds: float
    model_shape: tuple[int, int]
    level: int
    resumed_from_row: int = 0
    model: str = ""
    pixel_size_um: float = 0.0
    choice: str = ""  # how the model / channels were chosen ("" when given)

    @property
    def megapixels_per_second(self) -> float:
        """Throughput at model resolution."""
        return self.model_shape[0] * self.model_shape[1] / 1e6 / max(self.seconds, 1e-9)


class SlideGrid:
    """Mapping between the model grid and the chosen pyramid level (factor ``f`` = model px per level px)."""

    def __init__(self, slide: Slide, level: int, px0: float, model_px: float):
        self.level = level
        self.level_px = px0 * slide.downsample(level)
        f = self.level_px / model_px
        self.f = 1.0 if abs(f - 1.0) < 0.02 else f
        lv = slide.levels[level]
        self.height, self.width = max(1, round(lv.height * self.f)), max(1, round(lv.width * self.f))
        self.to_level0 = model_px / px0  # level-0 px per model px

    def read(self, slide: Slide, y0: int, y1: int, x0: int, x1: int, channels: list[int] | None) -> np.ndarray:
        """Model-grid region [y0:y1, x0:x1] as float32 (C, h, w), resampled from the level when needed."""
        if self.f == 1.0:
            raw = slide.read(self.level, y0, y1, x0, x1)
        else:
            ly0, lx0 = int(np.floor(y0 / self.f)), int(np.floor(x0 / self.f))
            ly1, lx1 = int(np.ceil(y1 / self.f)), int(np.ceil(x1 / self.f))
            raw = slide.read(self.level, ly0, ly1, lx0, lx1)
        if channels is not None:
            raw = raw[channels]
        x = raw.astype(np.float32)
        if x.shape[-2:] != (y1 - y0, x1 - x0):
            x = resample_to(x, (y1 - y0, x1 - x0), self.f < 1.0)
        return x


def _fingerprint(path: Path, net, opts: SlideOptions, grid: SlideGrid, tta: bool) -> dict:
    st = path.stat() if path.is_file() else None
    weights = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        weights.update(k.encode())
        weights.update(v.detach().cpu().numpy().tobytes()[:4096])
    return {"version": STATE_VERSION, "input": str(path.resolve()), "size": st.st_size if st else None,
            "mtime": st.st_mtime if st else None, "model": net.config.name, "weights": weights.hexdigest()[:16],
            "tile": opts.tile, "overlap": opts.overlap, "tissue_mask": opts.tissue_mask, "outputs": opts.outputs,
            "level": grid.level, "f": grid.f, "channels": opts.channels,
            "measure_channels": opts.measure_channels, "thresholds": opts.thresholds,
            "chunk": opts.chunk, "tta": tta, "passes": [p.name for p in opts.passes],
            "regions": hashlib.sha256(Path(opts.regions).read_bytes()).hexdigest()[:16] if opts.regions else None}


def _inside(region, labels: np.ndarray, ids: np.ndarray, ry0: int, rx0: int, to_level0: float) -> np.ndarray:
    """Which objects ``ids`` of a tile's labels have their centroid inside ``region`` (level-0 pixels)."""
    _, cy, cx = object_centroids(labels)
    return points_in_shape(region, (cx[ids] + rx0 + 0.5) * to_level0, (cy[ids] + ry0 + 0.5) * to_level0)


def segment_slide(path: str | os.PathLike, segmenter, outdir: str | os.PathLike, stem: str,
                  opts: SlideOptions | None = None, executor=None) -> SlideResult:
    """Segment one (possibly huge) image with ``segmenter``'s model into ``outdir`` (see module doc).

    Every target of the model gets its own label image (``labels/<target>`` in the OME-Zarr); test-time
    augmentation follows ``segmenter.tta``. ``executor`` (e.g. :func:`phenoseg.inference.tile_sources.
    dask_results` bound to a client) runs the tiles elsewhere; they come back in order and are merged here
    exactly as local ones.
    """
    opts = opts or SlideOptions()
    t_start = time.perf_counter()
    path, outdir = Path(path), Path(outdir)
    with open_slide(path) as slide:
        all_names = slide.channel_names
        for given in (opts.channels, opts.measure_channels):
            bad = [c for c in given or [] if not 0 <= c < len(all_names)]
            if bad:
                raise PhenosegError(f"{path}: channels {bad} out of range (the slide has {len(all_names)})")
        thumb_all, thumb_down = thumbnail(slide)
        # chosen from the thumbnail as for an image in memory (names, background, empty channels), among the
        # channels given when there are
        given = list(opts.channels) if opts.channels is not None else list(range(len(all_names)))
        rgb = slide.rgb and given == [0, 1, 2]
        net, chosen, choice = segmenter.choose_channels([all_names[c] for c in given], thumb_all[given], rgb)
        picked = [given[i] for i in chosen] if chosen is not None else opts.channels
        opts = dataclasses.replace(opts, channels=picked)
        names = all_names if opts.measure_channels is None else [all_names[c] for c in opts.measure_channels]
        px0 = opts.pixel_size_um or slide.pixel_size_um
        cfg = net.config
        n_in = len(opts.channels) if opts.channels is not None else len(all_names)
        tile = opts.tile or channel_scaled_tile(SLIDE_TILE, n_in, cfg.adaptor is not None)
        opts = dataclasses.replace(opts, tile=tile)
        targets = list(cfg.targets)
        pair = paired_targets(targets)
        order = ([pair[1]] + [k for k in range(len(targets)) if k != pair[1]]) if pair else list(range(len(targets)))
        if not px0:
            raise PhenosegError(f"{path}: no pixel size in its metadata; pass pixel_size_um= (µm per pixel)")
        check_pixel_size(px0, cfg.pixel_size_um, slide.shape_yx, str(path))
        grid = SlideGrid(slide, slide.choose_level(cfg.pixel_size_um, px0), px0, cfg.pixel_size_um)
        fp = _fingerprint(path, net, opts, grid, segmenter.tta)

        thumb = thumb_all[opts.channels] if opts.channels is not None else thumb_all
        # once per slide, from the thumbnail (for an image small enough to be its own thumbnail, exactly
        # the statistics of an untiled run)
        stats = normalisation_stats(thumb, *cfg.norm_percentiles)
        mask = tissue_mask(thumb, slide.rgb or cfg.modality == "brightfield") if opts.tissue_mask else None
        annotations = read_region_shape(opts.regions) if opts.regions else None

        work = outdir / f".{stem}.phenoseg-run"
        zarr_path = outdir / f"{stem}.ome.zarr.partial"
        state_path = work / "state.json"
        state = None
        if opts.resume and state_path.is_file():
            try:
                state = json.loads(state_path.read_text())
            except ValueError:
                state = None
            if state is not None and state.get("fingerprint") != fp:
                state = None
        resumed_from = 0
        need_labels = any(k in opts.outputs for k in ("zarr", "labels"))
        fresh = state is None
        ov, W, H = opts.overlap, grid.width, grid.height
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(zarr_path, ignore_errors=True)
            (work / "parts").mkdir(parents=True)
            state = {"fingerprint": fp, "row": 0, "next_label": [1] * len(targets), "flushed": 0,
                     "objects": [0] * len(targets), "skipped": 0}
            saved = np.zeros((len(targets), 0, W), np.uint32)
        else:
            resumed_from = state["row"]
            saved = np.load(work / "band.npy")
        writers = [LabelsWriter(zarr_path, t, (H, W), cfg.pixel_size_um, opts.chunk, create=fresh)
                   for t in targets] if need_labels else []
        image_out = None
        if "zarr" in opts.outputs:  # the root image of the OME-Zarr: the measured channels at the labels' grid
            dtype = slide.read(grid.level, 0, 1, 0, 1).dtype
            fill = float(np.iinfo(dtype).max) if slide.rgb and dtype.kind in "ui" else 0.0
            image_out = ImageWriter(zarr_path, (len(names), H, W), dtype, cfg.pixel_size_um, fill, opts.chunk,
                                    create=fresh)

        stride = net.stride

        def has_tissue(y0, y1, x0, x1) -> bool:
            if annotations is not None:
                s0 = grid.to_level0
                if not annotations.intersects(box(x0 * s0, y0 * s0, x1 * s0, y1 * s0)):
                    return False
            if mask is None:
                return True
            s = grid.to_level0 / thumb_down
            ty0, tx0 = int(y0 * s), int(x0 * s)
            ty1, tx1 = int(np.ceil(y1 * s)) + 1, int(np.ceil(x1 * s)) + 1
            return bool(mask[ty0:ty1, tx0:tx1].any())

        plan = plan_tiles(H, W, opts.tile, ov, stride, has_tissue)
        window = max(t.ry1 - t.ry0 for t in plan)
        # one buffer per target for the rows not yet on disk: at most a window plus a chunk row (memory ∝ width)
        band = np.zeros((len(targets), min(H, window + opts.chunk), W), np.uint32)
        valid = saved.shape[1]
        band[:, :valid] = saved
        del saved
        n_rows = plan[-1].row + 1
        n_cols = len(plan) // n_rows
        bar = None
        if opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(plan), initial=state["row"] * n_cols, desc=path.name, unit="tile",
                       dynamic_ncols=True, leave=False)
        ns = uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(fp, sort_keys=True))
        objects = [ObjectWriter(names, cfg.pixel_size_um, grid.to_level0, ns, opts.outputs, t, len(targets),
                                opts.passes) for t in targets]
        done_here = 0
        by_row: dict[int, list[Tile]] = {}
        for t in plan:
            if t.row >= state["row"]:
                by_row.setdefault(t.row, []).append(t)
        tiles = [t for row_tiles in by_row.values() for t in row_tiles]
        job = TileJob(str(path), grid, opts.channels, stats, opts.measure_channels)
        if executor is None:
            run_tile = segmenter.tile_function(net, opts.thresholds, window * window)
            results = local_results(tiles, lambda t: job.load(slide, t), run_tile)
        else:
            model = cfg.name if segmenter.model_arg == "auto" else segmenter.model_arg
            results = executor(tiles, job, model, segmenter.backend_arg, opts.thresholds, segmenter.tta)
        try:
            for r in range(state["row"], n_rows):
                head = by_row[r][0]
                cy0, cy1, ry0, ry1 = head.cy0, head.cy1, head.ry0, head.ry1
                py0 = max(ry0, cy0 - ov)  # rows above this are final: objects reach at most `ov` out of their core
                need = ry1 - state["flushed"]
                if need > band.shape[1]:
                    raise RuntimeError(f"tile row {r} needs {need} band rows, the band holds {band.shape[1]}")
                valid = max(valid, need)
                row_parts = [([], []) for _ in targets]
                for t in by_row[r]:
                    res = next(results)
                    if res is None:
                        state["skipped"] += 1
                    else:
                        raw, labels, scores = res
                        if image_out is not None:
                            image_out.write(t.cy0, t.cx0, raw[:, t.cy0 - t.ry0 : t.cy1 - t.ry0,
                                                              t.cx0 - t.rx0 : t.cx1 - t.rx0])
                        owned = owned_per_target(labels, ry0, t.rx0, t.core, pair)
                        if annotations is not None:  # kept by centroid (a paired nucleus with its cell)
                            owned = [kept[_inside(annotations, labels[k], kept, ry0, t.rx0, grid.to_level0)]
                                     if kept.size and not (pair and k == pair[0]) else kept
                                     for k, kept in enumerate(owned)]
                            if pair:
                                owned[pair[0]] = owned[pair[1]]
                        for k in order:  # a paired cell is pasted before its nucleus
                            kept = owned[k]
                            if not kept.size:
                                continue
                            first = state["next_label"][k]
                            rows = slice(py0 - state["flushed"], ry1 - state["flushed"])
                            region = band[k, rows, t.rx0 : t.rx1]
                            local = paste_owned(region, labels[k][py0 - ry0 :], kept, first)
                            if pair and k == pair[0]:  # a nucleus keeps only pixels its cell holds
                                outside = outside_cell(region, band[pair[1], rows, t.rx0 : t.rx1])
                                region[outside] = 0
                                local[outside] = 0
                            state["next_label"][k] += kept.size
                            feats, table = objects[k].describe(local, raw[:, py0 - ry0 :], first,
                                                               np.asarray(scores[k])[kept - 1], py0, t.rx0)
                            row_parts[k][0].extend(feats)
                            row_parts[k][1].extend(table)
                            state["objects"][k] += kept.size
                    done_here += 1
                    if bar is not None:
                        bar.set_postfix(objects=sum(state["objects"]), refresh=False)
                        bar.update(1)
                    if opts.stop_after_tiles is not None and done_here >= opts.stop_after_tiles:
                        raise KeyboardInterrupt
                # rows no later tile can touch go to disk in whole chunk rows
                last = r == n_rows - 1
                limit = H if last else ((cy1 - ov) // opts.chunk) * opts.chunk
                if limit > state["flushed"]:
                    k = limit - state["flushed"]
                    for w, b in zip(writers, band):
                        w.write_rows(state["flushed"], b[:k])
                    for i in range(0, valid - k, k):  # shift the rest up in place, k rows at a time (no copy)
                        band[:, i : min(i + k, valid - k)] = band[:, i + k : min(i + 2 * k, valid)]
                    band[:, max(0, valid - k) : valid] = 0
                    valid = max(0, valid - k)
                    state["flushed"] = limit
                for obj, (feats, table) in zip(objects, row_parts):
                    obj.save_row(work / "parts", r, feats, table)
                with atomic_write(work / "band.npy", ".npy") as tmp:
                    np.save(tmp, band[:, :valid])
                state["row"] = r + 1
                with atomic_write(state_path, ".json") as tmp:
                    Path(tmp).write_text(json.dumps(state))
        finally:
            results.close()
            if bar is not None:
                bar.close()

        if image_out is not None:
            image_out.finish(names, slide.rgb)
        files = finish_outputs(work, zarr_path, outdir, stem, opts.outputs, writers, objects, n_rows,
                               {"source": str(path), "model": cfg.name, "pixel_size_um": cfg.pixel_size_um,
                                "level0_pixel_size_um": px0, "targets": targets})
        shutil.rmtree(work, ignore_errors=True)
        return SlideResult(dict(zip(targets, state["objects"])), files, len(plan), state["skipped"],
                           time.perf_counter() - t_start, (H, W), grid.level, resumed_from, cfg.name, float(px0),
                           choice)
