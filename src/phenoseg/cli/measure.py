"""`phenoseg measure IMAGE --nuclei N.tif [--cells C.tif]`: measurements of label images made by any program."""

from __future__ import annotations

import argparse
from pathlib import Path

from phenoseg.cli.summary import read_with_labels, reporter, run_labelled_image
from phenoseg.io.inputs import ensure_writable, image_stem


def run(args: argparse.Namespace) -> int:
    """Measure one image's objects and write the chosen tables."""
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

    params = {"image": str(path), "nuclei": args.nuclei, "cells": args.cells, "pixel_size": args.pixel_size}
    return run_labelled_image(path, process, rep, args, kinds, outdir, params)
