"""``phenoseg train-classifier``: a crop classifier from instance classes or point annotations, optionally
with silver labels from a teacher, on the generic training loop (resumable, time-budgeted)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from phenoseg.errors import PhenosegError
from phenoseg.io.datasets import load_manifest
from phenoseg.models.classifier import ClassifierConfig, build_classifier
from phenoseg.models.zoo import load_model, save_model
from phenoseg.training.classifier.data import class_key, load_class_images, points_file, read_points
from phenoseg.training.classifier.objective import ClassifierObjective
from phenoseg.training.loop import LoopOptions, run_loop


@dataclass
class ClassifierTrainOptions:
    """What ``phenoseg train-classifier`` takes (see ``phenoseg train-classifier --help``)."""

    data: list[Path]
    out: Path
    silver: list[Path] = field(default_factory=list)
    teacher: str | None = None
    init: str | None = None
    segmenter: str | None = "brightfield_nuclei"  # None: annotated objects only (no false detections)
    seed_threshold: float | None = None  # the segmenter's, for the objects it finds (lower: more to reject)
    minutes: float | None = None
    max_steps: int | None = None
    resume: bool = False
    batch_size: int = 128
    crop_px: int = 64
    pixel_size_um: float = 0.5
    name: str | None = None
    val_minutes: float = 4.0
    limit: int | None = None  # images per split and dataset (quick runs, tests)
    lr: float = 2e-3
    seed: int = 0
    quiet: bool = False


def dataset_classes(root: Path) -> list[str]:
    """The class names of a dataset, in its own order: ``classes/*.json`` names, else the points' classes
    (first seen) and "other" for objects no point falls in."""
    root = Path(root)
    files = sorted((root / "classes").glob("*.json")) if (root / "classes").is_dir() else []
    if files:
        names = json.loads(files[0].read_text())["class_names"]
        return [class_key(names[k]) for k in sorted(names, key=int)]
    manifest = load_manifest(root)
    seen: list[str] = []
    for image_id in sorted(manifest["split"]):
        p = points_file(root, image_id)
        for _, _, c in read_points(p) if p is not None else []:
            if class_key(c) not in seen:
                seen.append(class_key(c))
    if not seen:
        raise PhenosegError(f"{root}: no classes/ (instance classes) and no points/ (point annotations); "
                            "see docs/training-data.md")
    return ["other", *sorted(seen)] if "other" not in seen else sorted(seen)


def segment_function(name: str, seed_threshold: float | None = None):
    """(image, µm/px) → nucleus labels with a segmentation model (bundled name or folder)."""
    from phenoseg.inference.segmenter import Segmenter

    seg = Segmenter(name, backend="torch")

    def run(data: np.ndarray, px: float) -> np.ndarray:
        return seg.segment(data, px, seed_threshold=seed_threshold).labels["nuclei"]

    return run


def train_classifier(opts: ClassifierTrainOptions) -> dict:
    """Train (or go on training with ``resume``) and write the best model to ``opts.out``; returns the
    run's record."""
    from phenoseg.phenotype.classify import Classifier

    if not opts.data:
        raise PhenosegError("data=: give at least one dataset folder")
    classes: list[str] = []
    for d in opts.data:
        classes += [c for c in dataset_classes(d) if c not in classes]
    teacher = None
    if opts.silver:
        if not (opts.teacher or opts.init):
            raise PhenosegError("silver=: give the teacher that labels the silver images (teacher=, or init=)")
        teacher = Classifier(load_model(opts.teacher or opts.init))
    init = load_model(opts.init) if opts.init else None
    if init is not None and init.config.kind != "classifier":
        raise PhenosegError(f"init=: '{opts.init}' is not a classifier")
    cfg = ClassifierConfig(
        name=opts.name or Path(opts.out).name, classes=classes, crop_px=opts.crop_px,
        pixel_size_um=opts.pixel_size_um, description="crop classifier trained with phenoseg train-classifier",
        silver_classes=list(teacher.config.classes) if teacher else None,
        training={"data": [str(d) for d in opts.data], "silver": [str(d) for d in opts.silver],
                  "teacher": opts.teacher or opts.init if opts.silver else None, "segmenter": opts.segmenter,
                  "seed_threshold": opts.seed_threshold,
                  "batch_size": opts.batch_size, "init": opts.init})
    net = build_classifier(cfg)
    if init is not None:
        own = net.state_dict()
        same = {k: v for k, v in init.state_dict().items() if k in own and own[k].shape == v.shape}
        net.load_state_dict(same, strict=False)
    net = net.to(memory_format=torch.channels_last)
    segment = segment_function(opts.segmenter, opts.seed_threshold) if opts.segmenter else None
    train, val = [], []
    for d in opts.data:
        train += load_class_images(d, "train", cfg, segment, limit=opts.limit)
        val += load_class_images(d, "val", cfg, segment, limit=opts.limit)
    for d in opts.silver:
        train += load_class_images(d, "train", cfg, segment, teacher=teacher, limit=opts.limit)
    if not train:
        raise PhenosegError("no training objects: the datasets have no train split with classes or points")
    if not val:
        raise PhenosegError("no validation images: the datasets have no val split with classes or points")
    objective = ClassifierObjective(net, train, val, lambda n: save_model(n, opts.out), opts.batch_size, opts.seed)
    cfg.training["objects"] = objective.counts
    if not opts.quiet:
        print(f"classes: {', '.join(classes)}; training objects: "
              + ", ".join(f"{k} {v}" for k, v in objective.counts.items() if v))
    optimizer = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=1e-4)
    loop = LoopOptions(out=Path(opts.out), minutes=opts.minutes, max_steps=opts.max_steps, resume=opts.resume,
                       val_minutes=opts.val_minutes, lr=opts.lr, quiet=opts.quiet)
    return run_loop(objective, optimizer, loop)
