"""Train the bundled classifiers' recipes in the background, resumable:
``nohup python tools/train_classifier_bundled.py RECIPE [--resume] [--threads N] &``.

Recipes: ``consep`` (brightfield_nucleus_classes: CoNSeP train, the bundled segmenter's objects at seed
threshold 0.3 so the detection output sees many false detections), ``brca`` (brightfield_breast_cell_classes:
BRCA-M2C points on the segmenter's objects), ``consep-gold`` / ``consep-silver`` (the teacher-student
comparison: both go on from the consep run for the same time, the second with the teacher's silver labels
on the other H&E sets' images). The bundled brightfield_nucleus_classes is consep, then consep-gold."""

import argparse
from pathlib import Path

import torch

from phenoseg.training.classifier.train import ClassifierTrainOptions, train_classifier

DATA = Path("../shared/data")
SILVER = [DATA / "monuseg", DATA / "cpm15", DATA / "dsb2018_brightfield"]
RECIPES = {
    "consep": dict(data=[DATA / "consep_patches"], out=Path("runs/classifier"), minutes=70, seed_threshold=0.3,
                   name="brightfield_nucleus_classes"),
    "brca": dict(data=[DATA / "brca_m2c"], out=Path("runs/classifier_brca"), minutes=60,
                 name="brightfield_breast_cell_classes"),
    "consep-gold": dict(data=[DATA / "consep_patches"], out=Path("runs/classifier_gold"), minutes=25,
                        seed_threshold=0.3, init="runs/classifier", lr=5e-4, name="brightfield_nucleus_classes"),
    "consep-silver": dict(data=[DATA / "consep_patches"], out=Path("runs/classifier_silver"), minutes=25,
                          seed_threshold=0.3, init="runs/classifier", silver=SILVER, lr=5e-4,
                          name="brightfield_nucleus_classes"),
}

parser = argparse.ArgumentParser()
parser.add_argument("recipe", choices=sorted(RECIPES))
parser.add_argument("--resume", action="store_true")
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
torch.set_num_threads(args.threads)
info = train_classifier(ClassifierTrainOptions(**RECIPES[args.recipe], val_minutes=5, resume=args.resume))
print(info["step"], info["best_score"])
