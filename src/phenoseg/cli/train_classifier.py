"""`phenoseg train-classifier --data DATASET... --out DIR`: a crop classifier (classes + detection probability)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    """Train, then print what the best model scored on validation."""
    from phenoseg.training.classifier.train import ClassifierTrainOptions, train_classifier

    opts = ClassifierTrainOptions(
        data=[Path(d) for d in args.data], out=Path(args.out), silver=[Path(d) for d in args.silver],
        teacher=args.teacher, init=args.init, segmenter=args.segmenter, seed_threshold=args.seed_threshold,
        minutes=args.minutes, max_steps=args.steps, resume=args.resume, batch_size=args.batch, crop_px=args.crop,
        pixel_size_um=args.pixel_size, name=args.name, val_minutes=args.val_minutes, quiet=args.quiet)
    if opts.minutes is None and opts.max_steps is None:
        from phenoseg.errors import PhenosegError

        raise PhenosegError("give a budget: --minutes N or --steps N")
    info = train_classifier(opts)
    config = json.loads((Path(args.out) / "config.json").read_text())
    val = config.get("metrics", {}).get("val", {})
    seg = val.get("segmenter", {})
    print(f"trained {info['step']} steps in {info['elapsed_s'] / 60:.1f} min → {args.out}")
    if seg:
        per = ", ".join(f"{k} {v:.3f}" for k, v in seg.get("f_c", {}).items())
        print(f"val (the segmenter's objects): F_d {seg['f_d']:.3f}; F_c {per}; mean {seg['f_c_mean']:.3f}")
    alone = val.get("annotated_masks")
    if alone:
        print(f"val (annotated masks): accuracy {alone['accuracy']:.3f}, macro F1 {alone['macro_f1']:.3f}")
    return 0
