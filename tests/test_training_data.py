"""The training-data layout is documented in the repository, with a tiny example dataset; training errors
point to it; a dataset without a val split gets one held out (and says so); the run ends with a readable
summary (issue "Safe by default", item 9)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from phenoseg.cli.main import main
from phenoseg.io.datasets import find_image_file, label_file, load_manifest
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_dataset"
FAST = ["--steps", "3", "--crop", "64", "--batch", "2", "--widths", "8,16", "--no-tune", "--val-minutes", "60"]


def test_the_documented_layout_is_the_example_dataset():
    doc = (ROOT / "docs" / "training-data.md").read_text()
    assert "tests/data/tiny_dataset" in doc and "manifest.json" in doc
    manifest = load_manifest(TINY)
    assert sorted(set(manifest["split"].values())) == ["train", "val"]
    for image_id in manifest["split"]:
        image = read_image(find_image_file(TINY, image_id))
        assert read_labels(label_file(TINY, "nuclei", image_id)).shape == image.shape_yx


def test_training_ends_with_a_readable_summary(tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "--data", str(TINY), "--out", str(out), *FAST, "--json", str(tmp_path / "s.json"),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "trained 3 steps" in text and "validated on 1 images" in text and "F1@0.5" in text
    assert f"--model {out}" in text and not text.lstrip().startswith("{")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["steps"] == 3 and summary["val_images"] == 1 and summary["train_images"] == 2


def test_a_dataset_without_val_gets_one_held_out(tmp_path, capsys):
    data = tmp_path / "noval"
    shutil.copytree(TINY, data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["split"] = {k: "train" for k in manifest["split"]}
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), *FAST]) == 0
    text = capsys.readouterr().out
    assert "no 'val' split" in text and "held out" in text
    assert "validated on 1 images held out from training" in text


def test_training_errors_point_to_the_layout(tmp_path, capsys):
    (tmp_path / "not_a_dataset").mkdir()
    code = main(["train", "--data", str(tmp_path / "not_a_dataset"), "--out", str(tmp_path / "m"), *FAST])
    err = capsys.readouterr().err
    assert code != 0 and "no manifest.json" in err and "docs/training-data.md" in err
