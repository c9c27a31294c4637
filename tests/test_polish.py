"""Small things a new user trips over (issue "Safe by default", item 10)."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phenoseg.cli.main import main
from phenoseg.io.overlay import contrasting_colour, overlay

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("phenoseg ")


def test_models_show_the_weights_licence(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("brightfield_nuclei"))
    assert "CC-BY-NC-SA-4.0" in line and "non-commercial" in line
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["brightfield_nuclei"]["commercial_use"] is False and rows["fluorescence_nuclei"]["commercial_use"]


def test_outlines_contrast_with_the_stain():
    dab = np.zeros((3, 40, 40), np.uint8)
    dab[:] = np.array([140, 90, 50], np.uint8)[:, None, None]  # brown
    labels = np.zeros((40, 40), np.uint32)
    labels[10:30, 10:30] = 1
    edge = overlay(dab, labels)[10, 20]
    assert tuple(edge) == (0, 255, 255)  # cyan on brown (yellow, the old colour, is close to it)
    he = np.array([[[110, 60, 160]]], np.uint8).reshape(1, 1, 3)
    assert contrasting_colour(he, np.ones((1, 1), bool)) != (255, 0, 255)  # not magenta on purple


def test_regions_count_is_after_filtering_without_numpy_warnings(tmp_path, capsys):
    regions = tmp_path / "half.geojson"
    polygon = [[[0, 0], [160, 0], [160, 256], [0, 256], [0, 0]]]  # the left half of the 320 px wide image
    regions.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": polygon},
         "properties": {"objectType": "annotation"}}]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["segment", str(EXAMPLES / "he_dsb2018.tif"), "-o", str(tmp_path / "all"), "--outputs", "csv"]) == 0
        assert main(["segment", str(EXAMPLES / "he_dsb2018.tif"), "-o", str(tmp_path / "half"), "--outputs", "csv",
                     "--regions", str(regions)]) == 0
    out = capsys.readouterr().out
    with open(tmp_path / "half" / "he_dsb2018_measurements.csv") as fh:
        n_half = sum(1 for _ in csv.DictReader(fh))
    with open(tmp_path / "all" / "he_dsb2018_measurements.csv") as fh:
        n_all = sum(1 for _ in csv.DictReader(fh))
    assert 0 < n_half < n_all
    assert f"{n_half} nuclei inside the regions" in out


def test_measure_says_how_many(tmp_path, capsys):
    labels = np.zeros((256, 320), np.uint16)
    labels[10:20, 10:20], labels[40:50, 40:50] = 1, 2
    tifffile.imwrite(tmp_path / "l.tif", labels)
    assert main(["measure", str(EXAMPLES / "he_dsb2018.tif"), "--nuclei", str(tmp_path / "l.tif"),
                 "-o", str(tmp_path / "t")]) == 0
    assert "measured 2 nuclei" in capsys.readouterr().out


def test_a_failed_input_leaves_no_empty_output_folder(tmp_path, capsys):
    out = tmp_path / "new" / "deeper"
    assert main(["segment", str(EXAMPLES / "fluo_dsb2018.tif"), "-o", str(out), "--pixel-size", "20"]) == 1
    assert not (tmp_path / "new").exists()


def test_whole_slide_mode_says_its_outputs_differ(tmp_path, capsys):
    image = np.random.default_rng(0).integers(0, 30, (96, 2400), dtype=np.uint8)
    path = tmp_path / "strip.tif"
    tifffile.imwrite(path, image, resolution=(2.0, 2.0), resolutionunit="MICROMETER")
    assert main(["segment", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert main(["segment", str(path), "-o", str(tmp_path / "out2"), "--restart"]) == 0
    out = capsys.readouterr().out
    assert "whole-slide mode" in out and "no overlay or report" in out
    # --axes cannot apply to a slide read lazily: refused, not ignored
    assert main(["segment", str(path), "-o", str(tmp_path / "out3"), "--axes", "YX"]) == 1
    assert "--axes applies to images read in memory" in capsys.readouterr().err
