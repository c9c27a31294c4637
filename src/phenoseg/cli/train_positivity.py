"""`phenoseg train-positivity --data DATASET... --out DIR`: MobileNet-ISAB on synthetic markers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    """Train, then print what the best model scored on the synthetic validation sets."""
    from phenoseg.cli.parser import dataset_pixel_sizes
    from phenoseg.errors import PhenosegError
    from phenoseg.training.positivity import PositivityTrainOptions, train_positivity

    if args.minutes is None and args.steps is None:
        raise PhenosegError("give a budget: --minutes N or --steps N")
    opts = PositivityTrainOptions(
        data=[Path(d) for d in args.data], out=Path(args.out), minutes=args.minutes, max_steps=args.steps,
        resume=args.resume, sets_per_step=args.sets_per_step, lr=args.lr, seed=args.seed,
        val_minutes=args.val_minutes, isab=not args.no_isab, name=args.name, windows_per_set=args.windows_per_set,
        init=args.init,
        data_pixel_size=dataset_pixel_sizes(args.data_pixel_size), quiet=args.quiet)
    info = train_positivity(opts)
    val = json.loads((Path(args.out) / "config.json").read_text()).get("metrics", {}).get("val_synthetic", {})
    print(f"trained {info['step']} steps in {info['elapsed_s'] / 60:.1f} min → {args.out}")
    if val:
        print(f"val (synthetic, {val['cells']} cells in {val['sets']} sets): F1 {val['f1']:.3f}, "
              f"ROC AUC {val['roc_auc']:.3f}")
    return 0
