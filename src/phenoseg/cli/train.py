"""`phenoseg train`: flags → :class:`~phenoseg.training.instanseg.train.TrainOptions` → a trained model folder."""

from __future__ import annotations

import argparse
import json

from phenoseg.errors import PhenosegError


def run(args: argparse.Namespace) -> int:
    """`phenoseg train`."""
    from phenoseg.cli.parser import dataset_pixel_sizes
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
        resume=args.resume, seed=args.seed, data_pixel_size=dataset_pixel_sizes(args.data_pixel_size),
        crop=args.crop, batch=args.batch, lr=args.lr, widths=widths, window=args.window,
        val_minutes=args.val_minutes, device=args.device, name=args.name, modality=args.modality, quiet=args.quiet,
        strong_augment=args.modality == "brightfield", init=args.init, workers=args.workers,
        val_max_images=args.val_max_images, tune=not args.no_tune, blocks_per_level=args.blocks_per_level,
        grow=args.grow, scale_jitter=args.scale_jitter,
        targets=[t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None,
        separate_decoders=args.separate_decoders, overwrite=args.overwrite, channelnet=args.channelnet,
    )
    try:
        summary = train(opts)
    except PhenosegError as exc:  # every training error points to the data layout
        raise PhenosegError(f"{exc} (training data layout: {DATA_DOC})") from exc
    if args.json:
        from phenoseg.io.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(summary, indent=2) + "\n")
    print(readable(summary))
    return 0


DATA_DOC = "docs/training-data.md"


def readable(summary: dict) -> str:
    """The end-of-training summary, for a person: what was trained, on what, and how well."""
    lines = [f"trained {summary['steps']} steps in {summary['minutes']} min on {summary['train_images']} images; "
             f"validated on {summary['val_images']} images"
             + (" held out from training" if summary.get("val_held_out_from_train") else "")]
    scores = (summary.get("metrics") or {}).get("val_model_resolution") or {}
    for key, m in scores.items():
        lines.append(f"  {key}: F1@0.5 {m['f1@0.5']:.3f}, F1 averaged over IoU 0.5-0.95 {m['f1_mean']:.3f}, "
                     f"PQ {m['pq']:.3f} ({m.get('n_true', '?')} objects)")
    if scores:
        lines.append("  (after choosing the thresholds on the validation images, at the model's pixel size)")
    lines.append(f"model: {summary['out']} — use it with: phenoseg segment IMAGE --model {summary['out']}")
    return "\n".join(lines)
