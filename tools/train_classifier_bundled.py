"""Train the bundled classifier's recipe (CoNSeP train, the bundled segmenter's objects at seed threshold 0.3)
in the background, resumable: ``nohup python tools/train_classifier_bundled.py [--resume] &``."""

import sys
from pathlib import Path

from phenoseg.training.classifier.train import ClassifierTrainOptions, train_classifier

resume = "--resume" in sys.argv
info = train_classifier(ClassifierTrainOptions(
    data=[Path("../shared/data/consep_patches")], out=Path("runs/classifier"), minutes=80, seed_threshold=0.3,
    val_minutes=5, name="brightfield_nucleus_classes", resume=resume))
print(info["step"], info["best_score"])
