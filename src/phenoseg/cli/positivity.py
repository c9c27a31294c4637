"""`phenoseg positivity IMAGE --cells CELLS.tif -o OUT`: marker positivity of cells segmented by any program,
written as CSV / AnnData columns and layers, QuPath GeoJSON measurements and composite classes, a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from phenoseg.cli.summary import read_with_labels, reporter, run_labelled_image
from phenoseg.errors import PhenosegError
from phenoseg.io.inputs import ensure_writable, image_stem


def run(args: argparse.Namespace) -> int:
    """Score one image's cells for every chosen channel and write the chosen outputs."""
    from phenoseg.io.channels import select_channels
    from phenoseg.io.report import positive_summary
    from phenoseg.outputs.image import ObjectSet, parse_outputs, write_image_outputs
    from phenoseg.phenotype.steps import check_positivity_options, positivity_pass

    kinds = parse_outputs(args.outputs)
    if not any(k in kinds for k in ("geojson", "csv", "anndata", "report")):
        raise PhenosegError(f"--outputs {args.outputs}: positivity is written to geojson, csv, anndata or the report; "
                            "choose at least one")
    check_positivity_options("model", args.positivity_threshold)
    outdir = Path(args.output)
    ensure_writable(outdir)
    path = Path(args.image)
    rep = reporter(args)

    def process(path: Path):
        image, labels, px = read_with_labels(path, {"cells": args.cells, "nuclei": args.nuclei}, args.pixel_size)
        scored = select_channels(image, args.channels)
        ppass = positivity_pass(args.model, args.device, scored, args.positivity_threshold, str(path))
        written, report, counts = write_image_outputs(ObjectSet(labels, {}, ppass.predictor.config.name, px),
                                                      scored, image_stem(path), outdir, kinds, passes=[ppass])
        summary = positive_summary(report.positive_fractions) if report is not None else ""
        rep.say(f"{path}: {counts['cells']} cells, {len(scored.channel_names)} channel(s) scored"
                f"{' (' + summary + ')' if summary else ''} → {', '.join(map(str, written))}")
        return report

    params = {"image": str(path), "cells": args.cells, "nuclei": args.nuclei, "model": args.model,
              "channels": args.channels, "pixel_size": args.pixel_size,
              "positivity_threshold": args.positivity_threshold}
    return run_labelled_image(path, process, rep, args, kinds, outdir, params)
