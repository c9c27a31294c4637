"""`phenoseg segment`: flags → :class:`~phenoseg.batch.SegmentOptions` → :func:`~phenoseg.batch.segment_batch`."""

from __future__ import annotations

import argparse

from phenoseg.batch import SegmentOptions, segment_batch
from phenoseg.cli.summary import finish, reporter


def options_from(args: argparse.Namespace) -> SegmentOptions:
    """The batch options a command line asks for."""
    return SegmentOptions(
        model=args.model, output_dir=args.output, pixel_size_um=args.pixel_size, device=args.device,
        backend=args.backend, tta=args.tta,
        outputs=[k.strip() for k in args.outputs.split(",") if k.strip()] if args.outputs is not None else None,
        regions=args.regions, seed_threshold=args.seed_threshold, mask_threshold=args.mask_threshold,
        min_area=args.min_area, channels=args.channels, measure_channels=args.measure_channels, axes=args.axes,
        tile_size=args.tile_size,
        tissue_mask=not args.no_tissue_mask, restart=args.restart, dask=args.dask, workers=args.workers,
        threads_per_task=args.threads_per_task, quiet=args.quiet, recursive=args.recursive,
        classify=args.classify, min_detection_probability=args.min_detection_probability,
        positivity=args.positivity, positivity_threshold=args.positivity_threshold)


def run(args: argparse.Namespace) -> int:
    """Every input is tried; failures are listed at the end (exit 1)."""
    rep = reporter(args)
    result = segment_batch(args.inputs, options_from(args), rep, debug=args.debug)
    return finish(rep, result.inputs, result.failures)
