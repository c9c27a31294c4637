"""The end of a batch on the command line: failures listed in flag words, the exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from phenoseg.batch import Reporter
from phenoseg.cli.main import to_flags


def reporter(args) -> Reporter:
    """Messages of a batch, quiet with ``--quiet``, in the CLI's flag words."""
    return Reporter(getattr(args, "quiet", False), to_flags)


def finish(rep: Reporter, files: list[Path], failures: list[tuple[Path, str]]) -> int:
    """List failures (exit 1) or say done (exit 0)."""
    if failures:
        print(f"phenoseg: {len(failures)} of {len(files)} input(s) failed:", file=sys.stderr)
        for path, msg in failures:
            msg = to_flags(msg)
            print(f"  {msg}" if msg.startswith(str(path)) else f"  {path}: {msg}", file=sys.stderr)
        return 1
    rep.say(f"done: {len(files)} image(s)")
    return 0


def read_with_labels(path, label_files: dict, pixel_size: float | None, need_pixel_size: bool = True):
    """(image, {target: labels}, µm per pixel) of a command over label images made by any program: every
    label image must match the image's shape; the pixel size from ``pixel_size`` or the metadata."""
    from phenoseg.errors import PhenosegError
    from phenoseg.io.images import read_image
    from phenoseg.io.labels import read_labels

    image = read_image(path)
    labels = {t: read_labels(f) for t, f in label_files.items() if f}
    for target, lab in labels.items():
        if lab.shape != image.shape_yx:
            raise PhenosegError(f"--{target}: label image {lab.shape} does not match the image {image.shape_yx}")
    px = pixel_size or image.pixel_size_um
    if px is None and need_pixel_size:
        raise PhenosegError(f"{path}: no pixel size in its metadata; give --pixel-size (µm per pixel)")
    return image, labels, px


def run_labelled_image(path, process, rep, args, kinds, outdir, params: dict) -> int:
    """Run ``process`` on the one image of a command over label images made by any program, write the HTML
    report when asked (with ``params``), and finish the run (exit code)."""
    from phenoseg.batch import run_each
    from phenoseg.io.report import write_report

    failures, reports = run_each([path], process, rep, args.debug)
    if reports and "report" in kinds:
        report = write_report(outdir / "report.html", reports, params, [(str(f), m) for f, m in failures])
        rep.say(f"report: {report}")
    return finish(rep, [path], failures)
