"""`phenoseg segment`: small images in memory, large ones (and slides) tiled and streamed, optionally on Dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from phenoseg.commands import (
    _finish_batch,
    _run_batch,
    _say,
    channel_indices,
    ensure_writable,
    expand_inputs,
    image_stem,
    select_channels,
)
from phenoseg.errors import PhenosegError
from phenoseg.outputs import DEFAULT_OUTPUTS, parse_outputs

SLIDE_OUTPUTS = ("zarr", "labels", "geojson", "csv")


def slide_mode(path: Path, args: argparse.Namespace, seg, kinds: list[str]) -> bool:
    """Whole-slide (tiled, streamed) processing: slide formats, OME-Zarr output asked for, or an image
    larger than the automatic tile size at the model's resolution."""
    from phenoseg.inference.segmenter import AUTO_TILE
    from phenoseg.io.slide import TIFFSLIDE_SUFFIXES, open_slide

    suffix = path.suffix.lower()
    if suffix in TIFFSLIDE_SUFFIXES or suffix == ".zarr" or path.is_dir():
        return True
    if suffix not in (".tif", ".tiff", ".btf", ".tf8"):
        return False
    if "zarr" in kinds:
        return True
    with open_slide(path) as slide:
        px = args.pixel_size or slide.pixel_size_um
        channels = channel_indices(slide.channel_names, args.channels, str(path))
        n = len(channels) if channels is not None else slide.n_channels
        try:
            model_px = seg.model_for(n).config.pixel_size_um
        except PhenosegError:
            return False  # the in-memory path reports the mismatch
        scale = (px / model_px) if px else 1.0
        h, w = slide.shape_yx
        return max(h, w) * scale > AUTO_TILE + 80


def _slide_outputs(kinds: list[str], explicit: bool) -> list[str]:
    if not explicit:
        return ["zarr", "geojson", "csv"]
    return [k for k in kinds if k in SLIDE_OUTPUTS]


def process_one(path: Path, args: argparse.Namespace, seg, kinds: list[str], explicit: bool, announced: set,
                executor=None):
    """Segment one input and write its outputs; returns its report entry (or None). ``executor`` runs the
    tiles of a slide elsewhere (Dask)."""
    from phenoseg.inference.slide_pipeline import SLIDE_TILE, SlideOptions, segment_slide
    from phenoseg.io.images import read_image
    from phenoseg.outputs import ObjectSet, write_image_outputs

    outdir = Path(args.output) if args.output else path.parent / "phenoseg"
    if not args.output:
        ensure_writable(outdir)
    if slide_mode(path, args, seg, kinds):
        from phenoseg.io.slide import open_slide

        with open_slide(path) as slide:
            channels = channel_indices(slide.channel_names, args.channels, str(path))
        outs = _slide_outputs(kinds, explicit)
        skipped = [k for k in kinds if k not in SLIDE_OUTPUTS] if explicit else []
        if skipped:
            _say(args, f"{path}: whole-slide mode writes {', '.join(SLIDE_OUTPUTS)}; not written: {', '.join(skipped)}")
        opts = SlideOptions(tile=args.tile_size or SLIDE_TILE, tissue_mask=not args.no_tissue_mask, outputs=outs,
                            pixel_size_um=args.pixel_size, channels=channels, progress=not args.quiet,
                            resume=not args.restart)
        res = segment_slide(path, seg, outdir, image_stem(path), opts, executor)
        extra = f", resumed at tile row {res.resumed_from_row}" if res.resumed_from_row else ""
        _say(args, f"{path}: {res.n_objects} nuclei in {res.tiles} tiles ({res.tiles_skipped} without tissue), "
                   f"model {res.model}, pyramid level {res.level}, {res.seconds:.1f} s "
                   f"({res.megapixels_per_second:.2f} MP/s){extra} → {', '.join(map(str, res.files))}")
        return None
    image = select_channels(read_image(path), args.channels)
    result = seg.segment(image, args.pixel_size)
    if args.model == "auto" and result.model not in announced:
        announced.add(result.model)
        kind = "RGB" if image.data.shape[0] == 3 else f"{image.data.shape[0]}-channel"
        _say(args, f"using bundled model '{result.model}' for {kind} images (choose another with --model)")
    objects = ObjectSet(result.labels["nuclei"], result.labels.get("cells"), result.scores.get("nuclei"),
                        result.model, result.pixel_size_um, result.timings["total_s"])
    written, report = write_image_outputs(objects, image, image_stem(path), outdir, kinds,
                                          Path(args.regions) if args.regions else None)
    counts = ", ".join(f"{int(len(np.unique(v))) - int(v.min() == 0)} {k}" for k, v in result.labels.items())
    _say(args, f"{path}: {counts} (model {result.model}, {result.pixel_size_um:g} µm/px, "
               f"{result.timings['total_s']:.1f} s) → {', '.join(str(w) for w in written)}")
    return report


def _make_segmenter(args: argparse.Namespace, progress: bool):
    from phenoseg.inference.segmenter import Segmenter

    return Segmenter(args.model, args.device, args.seed_threshold, args.mask_threshold, args.min_area, args.tta,
                     args.backend, args.tile_size, progress=progress)


_WORKER_SEGMENTER: dict = {}


def dask_task(path: str, args: argparse.Namespace, threads: int):
    """Run one input on a Dask worker (the model is loaded once per worker process)."""
    import torch

    torch.set_num_threads(max(1, threads))
    key = (args.model, args.device, args.backend)
    if key not in _WORKER_SEGMENTER:
        _WORKER_SEGMENTER[key] = _make_segmenter(args, progress=False)
    kinds = parse_outputs(args.outputs_resolved)
    try:
        return path, process_one(Path(path), args, _WORKER_SEGMENTER[key], kinds, args.outputs_explicit, set()), None
    except PhenosegError as exc:
        return path, None, str(exc)


def _dask_client(args: argparse.Namespace):
    """(client, local cluster or None, torch threads per task) for ``--dask [ADDRESS]``."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise PhenosegError("--dask needs dask.distributed: pip install 'phenoseg[dask]'") from None
    if args.dask == "local":
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster), cluster, 1
    try:
        return Client(args.dask, timeout="30s"), None, args.threads_per_task
    except (OSError, TimeoutError) as exc:
        raise PhenosegError(f"--dask {args.dask}: cannot reach the scheduler ({exc})") from None


def _run_dask_tiles(args: argparse.Namespace, path: Path, kinds: list[str]) -> tuple[list, list]:
    """One slide: its tiles are segmented on the Dask workers and merged here."""
    from phenoseg.inference.tile_sources import dask_results

    client, cluster, threads = _dask_client(args)
    try:
        seg = _make_segmenter(args, progress=not args.quiet)
        return _run_batch(args, [path], lambda p: process_one(p, args, seg, kinds, args.outputs_explicit, set(),
                                                              dask_results(client, threads)))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_dask(args: argparse.Namespace, files: list[Path]) -> tuple[list, list]:
    """Spread the inputs over Dask workers: a LocalCluster, or the scheduler at ``--dask ADDRESS``."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    client, cluster, threads = _dask_client(args)
    failures, reports = [], []
    quiet = argparse.Namespace(**{**vars(args), "quiet": True})
    try:
        futures = [client.submit(dask_task, str(f), quiet, threads, pure=False) for f in files]
        with tqdm(total=len(files), disable=args.quiet, unit="image", desc="images") as bar:
            for fut in as_completed(futures):
                try:
                    path, report, error = fut.result()
                except Exception as exc:  # a worker died or raised something unexpected
                    path, report, error = "?", None, f"{type(exc).__name__}: {exc}"
                if error:
                    failures.append((Path(path), error))
                    print(f"phenoseg: error: {error}", file=sys.stderr)
                elif report is not None:
                    reports.append(report)
                bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return failures, reports


def run_segment(args: argparse.Namespace) -> int:
    """Every input is tried; failures are listed at the end (exit 1)."""
    explicit = args.outputs is not None
    args.outputs_resolved = args.outputs or DEFAULT_OUTPUTS
    args.outputs_explicit = explicit
    kinds = parse_outputs(args.outputs_resolved)
    files = expand_inputs(args.inputs)
    if not files:
        raise PhenosegError("no input images found")
    if args.regions and not Path(args.regions).is_file():
        raise PhenosegError(f"--regions: no such file {args.regions}")
    if args.output:
        ensure_writable(Path(args.output))
    if args.tile_size is not None and args.tile_size < 64:
        raise PhenosegError("--tile-size must be at least 64 px")
    if args.dask and len(files) == 1 and slide_mode(files[0], args, _make_segmenter(args, False), kinds):
        failures, reports = _run_dask_tiles(args, files[0], kinds)
    elif args.dask:
        failures, reports = _run_dask(args, files)
    else:
        from tqdm import tqdm

        seg = _make_segmenter(args, progress=not args.quiet)
        announced: set[str] = set()
        bar = tqdm(total=len(files), unit="image", desc="images", disable=args.quiet or len(files) < 2)

        def one(p: Path):
            try:
                return process_one(p, args, seg, kinds, explicit, announced)
            finally:
                bar.update(1)

        failures, reports = _run_batch(args, files, one)
        bar.close()
    report_dir = Path(args.output) if args.output else (files[0].parent / "phenoseg")
    params = {"model": args.model, "pixel_size": args.pixel_size, "device": args.device, "outputs": kinds,
              "tta": args.tta, "seed_threshold": args.seed_threshold, "mask_threshold": args.mask_threshold,
              "min_area": args.min_area, "regions": args.regions, "inputs": [str(f) for f in files]}
    return _finish_batch(args, files, failures, reports, report_dir if "report" in kinds else None, params)
