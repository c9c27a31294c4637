"""`phenoseg evaluate`: F1 / SQ / PQ of predictions against ground truth, or of a model on a dataset split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phenoseg.errors import PhenosegError

LABEL_SUFFIXES = (".tif", ".tiff", ".png")


def find_prediction(pred_dir: Path, stem: str) -> Path | None:
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


def _is_classifier(model: str) -> bool:
    from phenoseg.models.zoo import model_kind, resolve_model_dir

    return model != "auto" and model_kind(resolve_model_dir(model)) == "classifier"


def run(args: argparse.Namespace) -> int:
    """`phenoseg evaluate`: --pred/--truth folders, or --model on --data (a dataset split)."""
    from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise
    from phenoseg.io.labels import read_labels

    if args.model and args.data and _is_classifier(args.model):
        from phenoseg.cli.evaluate_classes import run_classifier

        return run_classifier(args)
    unused = [f for f, v in (("--segmenter", args.segmenter), ("--seed-threshold", args.seed_threshold),
                             ("--min-detection-probability", args.min_detection_probability)) if v is not None]
    if unused:
        raise PhenosegError(f"{', '.join(unused)} apply when --model is a classifier")
    pairs: list[tuple[str, object, object]] = []  # (name, truth loader, prediction loader)
    failures: list[str] = []
    if args.pred or args.truth:
        if not (args.pred and args.truth):
            raise PhenosegError("evaluate needs both --pred and --truth (or --model with --data)")
        unused = [f for f, v in (("--model", args.model), ("--data", args.data), ("--target", args.target),
                                 ("--tta", args.tta), ("--pixel-size", args.pixel_size)) if v]
        if unused:
            raise PhenosegError(f"{', '.join(unused)} apply with --model and --data, not to --pred / --truth")
        pred_dir, truth_dir = Path(args.pred), Path(args.truth)
        for d in (pred_dir, truth_dir):
            if not d.is_dir():
                raise PhenosegError(f"{d}: not a folder")
        truths = sorted(f for f in truth_dir.iterdir() if f.suffix.lower() in LABEL_SUFFIXES)
        if not truths:
            raise PhenosegError(f"{truth_dir}: no label images")
        for t in truths:
            p = find_prediction(pred_dir, t.stem)
            if p is None:
                failures.append(f"{t.stem}: no prediction in {pred_dir}")
                continue
            pairs.append((t.stem, lambda t=t: read_labels(t), lambda p=p: read_labels(p)))
    elif args.model and args.data:
        from phenoseg.inference.segmenter import Segmenter
        from phenoseg.io.datasets import dataset_targets, find_image_file, image_pixel_size, label_file, load_manifest
        from phenoseg.models.zoo import read_config, resolve_model_dir

        root = Path(args.data)
        manifest = load_manifest(root)
        seg = Segmenter(args.model, device=args.device, tta=args.tta)
        ids = [i for i, s in manifest["split"].items() if s == args.split]
        if not ids:
            raise PhenosegError(f"{root}: no images in split '{args.split}'")
        predicted = read_config(resolve_model_dir(args.model)).targets if args.model != "auto" else ["nuclei"]
        common = [t for t in predicted if t in dataset_targets(root)]
        if args.target:
            if args.target not in common:
                raise PhenosegError(f"--target {args.target}: the model predicts {', '.join(predicted)}, the dataset "
                                    f"labels {', '.join(dataset_targets(root)) or 'nothing'}")
            target = args.target
        elif len(common) == 1:
            target = common[0]
        else:
            raise PhenosegError(f"choose the target to score with --target ({', '.join(common) or 'none in common'}"
                                f": the model predicts {', '.join(predicted)}, the dataset labels "
                                f"{', '.join(dataset_targets(root)) or 'nothing'})")
        for image_id in ids:
            px = image_pixel_size(manifest, image_id, args.pixel_size)
            truth_file = label_file(root, target, image_id)
            if truth_file is None:
                continue

            def predict(image_id=image_id, px=px):
                return seg.segment(find_image_file(root, image_id), px).labels[target]

            pairs.append((image_id, lambda f=truth_file: read_labels(f), predict))
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
