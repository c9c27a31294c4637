"""`phenoseg measure IMAGE --nuclei N.tif [--cells C.tif]`: measurements of label images made by any program."""

from __future__ import annotations

import argparse
from pathlib import Path

from phenoseg.batch import run_each
from phenoseg.cli.summary import finish, read_with_labels, reporter
from phenoseg.io.inputs import ensure_writable, image_stem


def run(args: argparse.Namespace) -> int:
    """Measure one image's objects and write the chosen tables."""
    from phenoseg.io.report import write_report
    from phenoseg.outputs.image import ObjectSet, parse_outputs, write_image_outputs

    kinds = parse_outputs(args.outputs)
    outdir = Path(args.output)
    ensure_writable(outdir)
    path = Path(args.image)
    rep = reporter(args)

    def process(p: Path):
        image, labels, px = read_with_labels(p, {"nuclei": args.nuclei, "cells": args.cells}, args.pixel_size,
                                             need_pixel_size=False)
        written, report, counts = write_image_outputs(ObjectSet(labels, {}, "", px), image, image_stem(p), outdir,
                                                      kinds, Path(args.regions) if args.regions else None,
                                                      write_label_images=False)
        measured = ", ".join(f"{n} {t}" for t, n in counts.items())
        rep.say(f"{p}: measured {measured} → {', '.join(map(str, written))}")
        return report

    failures, reports = run_each([path], process, rep, args.debug)
    if reports and "report" in kinds:
        params = {"image": str(path), "nuclei": args.nuclei, "cells": args.cells, "pixel_size": args.pixel_size}
        rep.say(f"report: {write_report(outdir / 'report.html', reports, params, [(str(p), m) for p, m in failures])}")
    return finish(rep, [path], failures)
