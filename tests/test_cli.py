"""The command line end to end, including bad input in a batch."""

import json
import os

import numpy as np
import pytest
import tifffile

from phenoseg.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_segment_writes_outputs(capsys, tmp_path, rgb_tiff, model_dir):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "segment", rgb_tiff, "-o", out, "--model", model_dir)
    assert code == 0, err
    labels = tifffile.imread(out / "he_nuclei.tif")
    assert labels.dtype == np.uint32 and labels.shape == (96, 96)
    geo = json.loads((out / "he.geojson").read_text())
    assert geo["type"] == "FeatureCollection"
    assert len(geo["features"]) == len(np.unique(labels)) - 1
    assert (out / "he_overlay.png").is_file()
    assert "Traceback" not in err


def test_segment_default_output_folder_and_pixel_size_override(capsys, tmp_path, rgb_tiff, model_dir):
    code, _, err = run(capsys, "segment", rgb_tiff, "--model", model_dir, "--pixel-size", "0.25",
                       "--outputs", "labels")
    assert code == 0, err
    labels = tifffile.imread(rgb_tiff.parent / "phenoseg" / "he_nuclei.tif")
    assert labels.shape == (96, 96)
    assert not (rgb_tiff.parent / "phenoseg" / "he.geojson").exists()


def test_batch_with_bad_inputs(capsys, tmp_path, rgb_tiff, model_dir):
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00garbage")
    missing = tmp_path / "missing.png"
    nopx = tmp_path / "nopx.tif"
    tifffile.imwrite(nopx, np.moveaxis(tifffile.imread(rgb_tiff), -1, -1), photometric="rgb")
    out = tmp_path / "out"
    code, _, err = run(capsys, "segment", bad, rgb_tiff, missing, nopx, "-o", out, "--model", model_dir)
    assert code == 1
    assert (out / "he_nuclei.tif").is_file()  # the good input still ran
    assert "3 of 4 input(s) failed" in err
    assert "no pixel size" in err and "no such file" in err and "cannot read" in err
    assert "Traceback" not in err
    assert not (out / "corrupt_nuclei.tif").exists() and not (out / "nopx_nuclei.tif").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(capsys, tmp_path, rgb_tiff, model_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, _, err = run(capsys, "segment", rgb_tiff, "-o", ro / "sub", "--model", model_dir)
    assert code == 2 and "cannot write" in err


def test_output_path_is_a_file(capsys, tmp_path, rgb_tiff, model_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "segment", rgb_tiff, "-o", blocker / "sub", "--model", model_dir)
    assert code == 2 and "cannot write" in err and "Traceback" not in err


def test_wrong_channel_count_and_unknown_model(capsys, tmp_path, model_dir):
    gray = tmp_path / "gray.tif"
    tifffile.imwrite(gray, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8),
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    two = tmp_path / "two.tif"  # 2 channels cannot go into an RGB model (a grey image can: copied into R, G, B)
    tifffile.imwrite(two, np.random.default_rng(0).integers(0, 255, (2, 64, 64), dtype=np.uint8),
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER", metadata={"axes": "CYX"})
    code, _, err = run(capsys, "segment", two, "-o", tmp_path / "o", "--model", model_dir)
    assert code == 1 and "expects 3 channel" in err
    code, _, err = run(capsys, "segment", gray, "-o", tmp_path / "o", "--model", "no_such_model")
    assert code == 1 and "no model 'no_such_model'" in err


def test_evaluate_pred_truth(capsys, tmp_path):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    t = np.zeros((32, 32), np.uint16)
    t[2:10, 2:10] = 1
    t[20:30, 20:30] = 2
    tifffile.imwrite(truth / "a.tif", t)
    tifffile.imwrite(pred / "a_nuclei.tif", (t == 1).astype(np.uint32) * 5)
    tifffile.imwrite(truth / "b.tif", t)
    tifffile.imwrite(pred / "b.tif", t.astype(np.uint32))
    code, stdout, err = run(capsys, "evaluate", "--pred", pred, "--truth", truth, "--json", tmp_path / "s.json")
    assert code == 0, err
    s = json.loads((tmp_path / "s.json").read_text())
    for key in ("f1@0.5", "f1@0.6", "f1@0.7", "f1@0.8", "f1@0.9", "f1_mean", "sq", "pq", "n_images", "n_true",
                "n_pred", "per_image"):
        assert key in s
    assert s["n_images"] == 2 and s["n_true"] == 4 and s["n_pred"] == 3
    assert s["f1@0.5"] == pytest.approx(2 * 3 / (2 * 3 + 0 + 1))
    assert "dataset" in stdout


def test_evaluate_model_on_dataset(capsys, tmp_path, dataset_dir, model_dir):
    code, stdout, err = run(capsys, "evaluate", "--model", model_dir, "--data", dataset_dir, "--json",
                            tmp_path / "e.json")
    assert code == 0, err
    s = json.loads((tmp_path / "e.json").read_text())
    assert s["n_images"] == 2 and s["n_true"] > 20


def test_models_json(capsys):
    code, stdout, _ = run(capsys, "models", "--json")
    assert code == 0
    rows = json.loads(stdout)
    assert isinstance(rows, list)
    for r in rows:
        assert {"name", "pixel_size_um", "channels", "targets"} <= set(r)


def test_channel_selection_and_glob(capsys, tmp_path, model_dir):
    from phenoseg.synthetic import render_image, synthetic_labels

    lab = synthetic_labels((80, 80), 10, seed=1)
    rgb = render_image(lab, "brightfield", seed=1)
    stack = np.concatenate([rgb, rgb[:1]], 0)  # 4 channels: R, G, B, extra
    path = tmp_path / "multi.ome.tif"
    tifffile.imwrite(path, stack, metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                                            "Channel": {"Name": ["R", "G", "B", "X"]}})
    out = tmp_path / "out"
    code, _, err = run(capsys, "segment", str(tmp_path / "*.tif"), "-o", out, "--model", model_dir,
                       "--channels", "R,G,B", "--outputs", "labels")
    assert code == 0, err
    assert tifffile.imread(out / "multi_nuclei.tif").shape == (80, 80)
    code, _, err = run(capsys, "segment", path, "-o", out, "--model", model_dir, "--channels", "CD99")
    assert code == 1 and "no channel 'CD99'" in err


def test_plate_layout_outputs_never_collide(capsys, tmp_path, rgb_tiff, model_dir):
    import shutil

    plate = tmp_path / "plate"
    for well in ("A01", "A02"):
        (plate / well).mkdir(parents=True)
        shutil.copy(rgb_tiff, plate / well / "field1.tif")
    out = tmp_path / "out"
    code, _, err = run(capsys, "segment", plate, "-o", out, "--model", model_dir, "--outputs", "labels")
    assert code == 2 and "no input images found" in err  # a folder of folders needs --recursive
    code, _, err = run(capsys, "segment", plate, "--recursive", "-o", out, "--model", model_dir, "--outputs", "labels")
    assert code == 0, err
    assert (out / "A01" / "field1_nuclei.tif").is_file() and (out / "A02" / "field1_nuclei.tif").is_file()
    # a glob over the wells mirrors them the same way
    out2 = tmp_path / "out2"
    code, _, err = run(capsys, "segment", str(plate / "*" / "field1.tif"), "-o", out2, "--model", model_dir,
                       "--outputs", "labels")
    assert code == 0 and sorted(p.name for p in out2.iterdir()) == ["A01", "A02"]
    # two files of one folder with one stem would overwrite each other: refused before any work
    shutil.copy(plate / "A01" / "field1.tif", plate / "A01" / "field1.tiff")
    code, _, err = run(capsys, "segment", plate / "A01", "-o", tmp_path / "out3", "--model", model_dir)
    assert code == 2 and "would write the same outputs" in err
    assert not (tmp_path / "out3").exists()


def test_flags_that_cannot_apply_are_refused(capsys, tmp_path, rgb_tiff, model_dir):
    code, _, err = run(capsys, "segment", rgb_tiff, "--recursive", "-o", tmp_path / "o", "--model", model_dir)
    assert code == 2 and "--recursive" in err
    truth = tmp_path / "t"
    truth.mkdir()
    code, _, err = run(capsys, "evaluate", "--pred", truth, "--truth", truth, "--target", "cells")
    assert code == 2 and "--target" in err
