"""Refusing, before any work starts, what a batch's options cannot do."""

from __future__ import annotations

from pathlib import Path

from phenoseg.errors import PhenosegError
from phenoseg.io.inputs import ensure_writable
from phenoseg.outputs.image import parse_outputs


def check_options(options, files: list[Path]) -> None:
    """Refuse what cannot apply before any work starts."""
    if options.outputs is not None:
        parse_outputs(",".join(options.outputs))
    if not files:
        raise PhenosegError("no input images found")
    if options.regions and not Path(options.regions).is_file():
        raise PhenosegError(f"regions={options.regions}: no such file")
    if options.output_dir:
        ensure_writable(Path(options.output_dir))
    if options.tile_size is not None and options.tile_size < 64:
        raise PhenosegError(f"tile_size={options.tile_size}: must be at least 64 px")
    if options.min_detection_probability is not None:
        if not options.classify:
            raise PhenosegError("min_detection_probability= needs classify= (the classifier gives the probability)")
        if not 0.0 <= options.min_detection_probability <= 1.0:
            raise PhenosegError(f"min_detection_probability={options.min_detection_probability}: must be in [0, 1]")
    if options.classify and options.dask:
        raise PhenosegError("classify= does not run on Dask workers yet; run without dask=")
    from phenoseg.phenotype.steps import check_positivity_options

    check_positivity_options(options.positivity, options.positivity_threshold)
    if options.positivity and options.dask:
        raise PhenosegError("positivity= does not run on Dask workers yet; run without dask=")
    if options.dask is None and (options.workers != 2 or options.threads_per_task != 1):
        raise PhenosegError("workers= and threads_per_task= apply with dask= only")
