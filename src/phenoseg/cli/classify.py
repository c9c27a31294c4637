"""`phenoseg classify IMAGE --nuclei LABELS.tif -o OUT`: classes and detection probabilities of objects
segmented by any program, written as GeoJSON (QuPath classifications), CSV / AnnData, overlay, report."""

from __future__ import annotations

import argparse
from pathlib import Path

from phenoseg.cli.summary import read_with_labels, reporter, run_labelled_image
from phenoseg.errors import PhenosegError
from phenoseg.io.inputs import ensure_writable, image_stem


def run(args: argparse.Namespace) -> int:
    """Classify one image's objects and write the chosen outputs."""
    from phenoseg.io.report import class_summary
    from phenoseg.outputs.image import ObjectSet, parse_outputs, write_image_outputs
    from phenoseg.phenotype.classify import classify_labels, load_classifier

    kinds = parse_outputs(args.outputs)
    p = args.min_detection_probability
    if p is not None and not 0.0 <= p <= 1.0:
        raise PhenosegError(f"--min-detection-probability {p}: must be in [0, 1]")
    outdir = Path(args.output)
    ensure_writable(outdir)
    path = Path(args.image)
    rep = reporter(args)

    def process(path: Path):
        image, labels, px = read_with_labels(path, {"nuclei": args.nuclei}, args.pixel_size)
        clf = load_classifier(args.model, args.device, args.tta, image.data.shape[0])
        labels, cpass, dropped = classify_labels(clf, image.data, labels, px, p)
        written, report, counts = write_image_outputs(ObjectSet(labels, {}, clf.config.name, px), image,
                                                      image_stem(path), outdir, kinds, passes=[cpass])
        pred = cpass.precomputed
        keep = pred.detection >= (p if p is not None else -1.0)
        classes = {}
        for c in pred.class_names()[keep]:
            classes[c] = classes.get(c, 0) + 1
        removed = f", {dropped} below detection probability {p:g} removed" if p is not None else ""
        rep.say(f"{path}: {counts['nuclei']} objects ({class_summary(classes)}){removed} → "
                f"{', '.join(map(str, written))}")
        return report

    params = {"image": str(path), "nuclei": args.nuclei, "model": args.model, "pixel_size": args.pixel_size,
              "min_detection_probability": p, "tta": args.tta}
    return run_labelled_image(path, process, rep, args, kinds, outdir, params)
