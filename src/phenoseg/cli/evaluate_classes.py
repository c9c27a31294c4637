"""`phenoseg evaluate --model CLASSIFIER --data DATASET`: HoVer-Net's F_d / F_c of the segmenter's objects
classified, the classifier alone on annotated masks, FROC per class (point annotations)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from phenoseg.errors import PhenosegError


def format_scores(result: dict, key: str) -> str:
    """Readable lines of one detection filter's scores and the rest."""
    s = result["filters"][key]
    lines = [f"{result['images']} images, {result['annotated']} annotated objects; detection filter: {key}",
             f"F_d {s['f_d']:.3f} (TP {s['tp']}, FP {s['fp']}, FN {s['fn']})",
             "F_c " + ", ".join(f"{c} {v:.3f}" for c, v in s["f_c"].items()) + f"; mean {s['f_c_mean']:.3f}"]
    if "segmentation_f1@0.5" in s:
        lines.append(f"segmentation F1@0.5 {s['segmentation_f1@0.5']:.3f} (precision {s['precision@0.5']:.3f}, "
                     f"recall {s['recall@0.5']:.3f})")
    alone = result.get("annotated_masks")
    if alone:
        f1 = ", ".join(f"{c} {v:.3f}" for c, v in alone["f1"].items())
        auc = ", ".join(f"{c} {v:.3f}" for c, v in alone["roc_auc"].items())
        lines.append(f"classifier on the annotated masks ({alone['n']} objects): accuracy {alone['accuracy']:.3f}, "
                     f"macro F1 {alone['macro_f1']:.3f}; F1 {f1}; ROC AUC {auc}")
        lines.append(f"confusion (rows true, columns predicted; {', '.join(result['classes'])}): {alone['confusion']}")
    if result.get("froc"):
        lines.append("FROC " + ", ".join(f"{c} {v['mean']:.3f}" for c, v in result["froc"].items())
                     + f"; mean {result['froc_mean']:.3f}")
    return "\n".join(lines)


def run_classifier(args: argparse.Namespace) -> int:
    """Score a classifier on a dataset split."""
    from phenoseg.evaluation.classify_dataset import FILTERS, predict_dataset, score_dataset
    from phenoseg.phenotype.classify import load_classifier
    from phenoseg.training.classifier.train import segment_function

    p = args.min_detection_probability
    if p is not None and not 0.0 <= p <= 1.0:
        raise PhenosegError(f"--min-detection-probability {p}: must be in [0, 1]")
    if args.target or args.pixel_size:
        raise PhenosegError("--target and --pixel-size apply to segmentation models, not to a classifier --model")
    clf = load_classifier(args.model, args.device, args.tta)
    segment = segment_function(args.segmenter or "brightfield_nuclei", args.seed_threshold)
    images = predict_dataset(clf, Path(args.data), args.split, segment)
    if not images:
        raise PhenosegError(f"{args.data}: no images with classes/ or points/ in split '{args.split}'")
    filters = FILTERS if p is None or p in FILTERS else (*FILTERS, p)
    result = score_dataset(images, list(clf.config.classes), filters)
    print(format_scores(result, "none" if p is None else f"{p:g}"))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
