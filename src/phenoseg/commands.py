"""What each `phenoseg` subcommand does (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from phenoseg.errors import PhenosegError
from phenoseg.io.images import SUPPORTED_SUFFIXES

SLIDE_ONLY_SUFFIXES = {".svs", ".ndpi", ".scn", ".zarr"}

LABEL_SUFFIXES = (".tif", ".tiff", ".png")


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders expanded to the supported images they hold (sorted)."""
    import glob

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.exists() and any(ch in item for ch in "*?["):
            out += sorted(Path(m) for m in glob.glob(item)
                          if Path(m).suffix.lower() in SUPPORTED_SUFFIXES | SLIDE_ONLY_SUFFIXES)
            continue
        if p.is_dir() and p.suffix.lower() != ".zarr":
            out += sorted(f for f in p.iterdir() if (f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES)
                          or f.suffix.lower() in SLIDE_ONLY_SUFFIXES)
        else:
            out.append(p)
    return out


def image_stem(path: Path) -> str:
    """File name without its image suffix (".ome.tif" counts as one suffix)."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def channel_indices(names: list[str], spec: str | None, where: str) -> list[int] | None:
    """0-based indices of the channels named or numbered in a comma-separated ``spec`` (None: all)."""
    if not spec:
        return None
    picks = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        if token in names:
            picks.append(names.index(token))
        elif token.lstrip("-").isdigit() and -len(names) <= int(token) < len(names):
            picks.append(int(token) % len(names))
        else:
            raise PhenosegError(f"{where}: no channel '{token}' (channels: {', '.join(names)})")
    return picks


def select_channels(image, spec: str | None):
    """Keep the channels named or numbered (0-based) in a comma-separated ``spec``, in that order."""
    picks = channel_indices(image.channel_names, spec, image.path)
    if picks is None:
        return image
    from phenoseg.io.images import Image

    return Image(image.data[picks], image.pixel_size_um, [image.channel_names[i] for i in picks], image.path,
                 rgb=image.rgb and picks == [0, 1, 2])


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".phenoseg-write-test")
        os.close(fd)
        os.remove(tmp)
    except OSError as exc:
        raise PhenosegError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from exc


def _say(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, flush=True)


def _finish_batch(args: argparse.Namespace, files: list[Path], failures: list[tuple[Path, str]], reports: list,
                  report_dir: Path | None, parameters: dict) -> int:
    """Write the run's report, list failures, choose the exit code."""
    if reports and report_dir is not None:
        from phenoseg.io.report import write_report

        path = write_report(report_dir / "report.html", reports, parameters, [(str(p), m) for p, m in failures])
        _say(args, f"report: {path}")
    if failures:
        print(f"phenoseg: {len(failures)} of {len(files)} input(s) failed:", file=sys.stderr)
        for path, msg in failures:
            print(f"  {msg}" if msg.startswith(str(path)) else f"  {path}: {msg}", file=sys.stderr)
        return 1
    _say(args, f"done: {len(files)} image(s)")
    return 0


def _run_batch(args: argparse.Namespace, files: list[Path], process) -> tuple[list, list]:
    """Call ``process(path)`` for every input; PhenosegError and unexpected errors become failures."""
    failures: list[tuple[Path, str]] = []
    reports = []
    for path in files:
        try:
            report = process(path)
            if report is not None:
                reports.append(report)
        except PhenosegError as exc:
            failures.append((path, str(exc)))
            print(f"phenoseg: error: {exc}", file=sys.stderr)
        except Exception as exc:
            if getattr(args, "debug", False):
                raise
            failures.append((path, f"{type(exc).__name__}: {exc}"))
            print(f"phenoseg: error: {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return failures, reports


def run_segment(args: argparse.Namespace) -> int:
    """`phenoseg segment` (see :mod:`phenoseg.segment_run`)."""
    from phenoseg.segment_run import run_segment as run

    return run(args)


def run_measure(args: argparse.Namespace) -> int:
    """`phenoseg measure IMAGE --nuclei N.tif [--cells C.tif]`: measurements of existing label images."""
    from phenoseg.io.images import read_image
    from phenoseg.io.labels import read_labels
    from phenoseg.outputs import ObjectSet, parse_outputs, write_image_outputs

    kinds = parse_outputs(args.outputs)
    outdir = Path(args.output)
    ensure_writable(outdir)
    path = Path(args.image)

    def process(p: Path):
        image = read_image(p)
        nuclei = read_labels(args.nuclei)
        cells = read_labels(args.cells) if args.cells else None
        for name, lab in (("--nuclei", nuclei), ("--cells", cells)):
            if lab is not None and lab.shape != image.shape_yx:
                raise PhenosegError(f"{name}: label image {lab.shape} does not match the image {image.shape_yx}")
        px = args.pixel_size or image.pixel_size_um
        objects = ObjectSet(nuclei, cells, None, "", px)
        written, report = write_image_outputs(objects, image, image_stem(p), outdir, kinds,
                                              Path(args.regions) if args.regions else None, write_label_images=False)
        _say(args, f"{p}: measured {report.n_objects if report else ''} objects → {', '.join(map(str, written))}")
        return report

    failures, reports = _run_batch(args, [path], process)
    params = {"image": str(path), "nuclei": args.nuclei, "cells": args.cells, "pixel_size": args.pixel_size}
    return _finish_batch(args, [path], failures, reports, outdir if "report" in kinds else None, params)


def _find_pred(pred_dir: Path, stem: str) -> Path | None:
    for name in (f"{stem}_nuclei", stem):
        for suffix in LABEL_SUFFIXES:
            p = pred_dir / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def format_table(rows: list[dict], summary: dict) -> str:
    """A plain-text table of per-image and dataset scores."""
    cols = ["f1@0.5", "f1@0.6", "f1@0.7", "f1@0.8", "f1@0.9", "f1_mean", "sq", "pq", "n_true", "n_pred"]
    width = max([len("dataset")] + [len(r["image"]) for r in rows])
    width = min(width, 40)
    lines = [f"{'image':<{width}} " + " ".join(f"{c:>8}" for c in cols)]
    for r in rows + [dict(summary, image="dataset")]:
        vals = [f"{r[c]:>8.3f}" if isinstance(r[c], float) else f"{r[c]:>8}" for c in cols]
        lines.append(f"{r['image'][:width]:<{width}} " + " ".join(vals))
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """`phenoseg evaluate`: --pred/--truth folders, or --model on --data (a dataset split)."""
    from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise
    from phenoseg.io.labels import read_labels

    pairs: list[tuple[str, object, object]] = []  # (name, truth loader, prediction loader)
    failures: list[str] = []
    if args.pred or args.truth:
        if not (args.pred and args.truth):
            raise PhenosegError("evaluate needs both --pred and --truth (or --model with --data)")
        pred_dir, truth_dir = Path(args.pred), Path(args.truth)
        for d in (pred_dir, truth_dir):
            if not d.is_dir():
                raise PhenosegError(f"{d}: not a folder")
        truths = sorted(f for f in truth_dir.iterdir() if f.suffix.lower() in LABEL_SUFFIXES)
        if not truths:
            raise PhenosegError(f"{truth_dir}: no label images")
        for t in truths:
            p = _find_pred(pred_dir, t.stem)
            if p is None:
                failures.append(f"{t.stem}: no prediction in {pred_dir}")
                continue
            pairs.append((t.stem, lambda t=t: read_labels(t), lambda p=p: read_labels(p)))
    elif args.model and args.data:
        from phenoseg.inference.segmenter import Segmenter
        from phenoseg.io.datasets import find_image_file, image_pixel_size, load_manifest

        root = Path(args.data)
        manifest = load_manifest(root)
        seg = Segmenter(args.model, args.device, tta=args.tta)
        ids = [i for i, s in manifest["split"].items() if s == args.split]
        if not ids:
            raise PhenosegError(f"{root}: no images in split '{args.split}'")
        for image_id in ids:
            px = image_pixel_size(manifest, image_id, args.pixel_size)

            def predict(image_id=image_id, px=px):
                res = seg.segment(find_image_file(root, image_id), px)
                return next(iter(res.labels.values()))

            pairs.append((image_id, lambda i=image_id: read_labels(root / "labels" / f"{i}.tif"), predict))
    else:
        raise PhenosegError("evaluate needs --pred and --truth, or --model and --data")

    rows = []
    total = MatchCounts()
    for name, load_truth, load_pred in pairs:
        try:
            truth, pred = load_truth(), load_pred()
            if truth.shape != pred.shape:
                raise PhenosegError(f"shape {pred.shape} of the prediction differs from the truth's {truth.shape}")
            c = match_counts(truth, pred)
        except PhenosegError as exc:
            failures.append(f"{name}: {exc}")
            continue
        total = total + c
        rows.append(dict(summarise(c), image=name))
    if not rows:
        raise PhenosegError("nothing to evaluate: " + "; ".join(failures[:3]))
    summary = summarise(total)
    summary["n_images"] = len(rows)
    if not args.quiet:
        print(format_table(rows, summary))
    if args.json:
        out = dict(summary, per_image=rows)
        if args.model:
            out["model"] = args.model
            out["data"] = str(args.data)
            out["split"] = args.split
        Path(args.json).write_text(json.dumps(out, indent=2))
    for f in failures:
        print(f"phenoseg: error: {f}", file=sys.stderr)
    return 1 if failures else 0


def run_train(args: argparse.Namespace) -> int:
    """`phenoseg train`."""
    from phenoseg.cli import _dataset_pixel_sizes
    from phenoseg.training.instanseg.train import TrainOptions, train

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.grow and not args.init:
        raise PhenosegError("--grow extends the model given by --init; pass --init NAME_OR_DIR")
    if not 0 <= args.scale_jitter < 1:
        raise PhenosegError(f"--scale-jitter: expected a value in [0, 1), got {args.scale_jitter}")
    if args.minutes is None and args.steps is None:
        raise PhenosegError("give a budget: --minutes N and/or --steps N")
    try:
        widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        raise PhenosegError(f"--widths: expected comma-separated integers, got '{args.widths}'") from None
    opts = TrainOptions(
        data=args.data, out=args.out, pixel_size=args.pixel_size, minutes=args.minutes, max_steps=args.steps,
        resume=args.resume, seed=args.seed, data_pixel_size=_dataset_pixel_sizes(args.data_pixel_size),
        crop=args.crop, batch=args.batch, lr=args.lr, widths=widths, window=args.window,
        val_minutes=args.val_minutes, device=args.device, name=args.name, modality=args.modality, quiet=args.quiet,
        strong_augment=args.modality == "brightfield", init=args.init, workers=args.workers,
        val_max_images=args.val_max_images, tune=not args.no_tune, blocks_per_level=args.blocks_per_level,
        grow=args.grow, scale_jitter=args.scale_jitter,
    )
    summary = train(opts)
    print(json.dumps(summary, indent=2))
    return 0


def run_models(args: argparse.Namespace) -> int:
    """`phenoseg models`."""
    from phenoseg.models.zoo import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no bundled models")
    for r in rows:
        print(f"{r['name']:<24} {r['modality']:<13} {r['pixel_size_um']:g} µm/px  channels: {', '.join(r['channels'])}"
              f"  targets: {', '.join(r['targets'])}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """`phenoseg export --format torchscript`."""
    from phenoseg.export.torchscript import export_torchscript
    from phenoseg.models.zoo import load_model

    out = Path(args.output)
    ensure_writable(out.parent if str(out.parent) else Path("."))
    net = load_model(args.model)
    if args.format == "bioimageio":
        from phenoseg.export.bioimageio import _licence_id, export_bioimageio, validate

        path = export_bioimageio(net, out, _licence_id(net.config.license))
        if not args.no_validate:
            if path.suffix == ".zip":
                import tempfile
                import zipfile

                with tempfile.TemporaryDirectory() as tmp:
                    zipfile.ZipFile(path).extractall(tmp)
                    status = validate(Path(tmp) / "rdf.yaml")
            else:
                status = validate(path / "rdf.yaml")
            print(f"bioimageio.spec validation: {status}")
        print(f"wrote {path}")
        return 0
    path = export_torchscript(net, out)
    print(f"wrote {path} (model {net.config.name}, {net.config.pixel_size_um:g} µm/px, "
          f"channels {', '.join(net.config.channel_names)}, targets {', '.join(net.config.targets)})")
    return 0
