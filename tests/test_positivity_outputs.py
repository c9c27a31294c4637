"""Marker positivity as users get it: `phenoseg positivity`, `segment --positivity`, every output, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from phenoseg.cli.main import main
from phenoseg.models.positivity import PositivityConfig, build_positivity
from phenoseg.synthetic.cells import nuclei_and_cells
from phenoseg.synthetic.markers import render_marker


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 3-channel fluorescence image (DAPI, CD3, CD8) of 30 cells, its cell / nucleus labels and a tiny model."""
    from phenoseg.models.zoo import save_model

    root = tmp_path_factory.mktemp("pos")
    nuclei, cells = nuclei_and_cells((160, 160), 30, seed=4)
    gen = torch.Generator().manual_seed(5)
    markers = [render_marker(cells, nuclei, gen)[0] for _ in range(2)]
    image = np.stack([(nuclei > 0) * 200.0, *[m * 1000 for m in markers]]).astype(np.uint16)
    tifffile.imwrite(root / "image.ome.tif", image, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "CD3",
                                                                                                   "CD8"]},
                                                                "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    tifffile.imwrite(root / "cells.tif", cells.astype(np.uint16))
    tifffile.imwrite(root / "nuclei.tif", nuclei.astype(np.uint16))
    torch.manual_seed(0)
    save_model(build_positivity(PositivityConfig(widths=[8, 12, 16], embed_dim=16, inducing=4)), root / "model")
    return root, cells


def test_positivity_command_writes_every_output(scene, tmp_path):
    import anndata

    root, cells = scene
    out = tmp_path / "out"
    rc = main(["positivity", str(root / "image.ome.tif"), "--cells", str(root / "cells.tif"), "--nuclei",
               str(root / "nuclei.tif"), "--channels", "CD3,CD8", "--model", str(root / "model"), "-o", str(out),
               "--outputs", "geojson,csv,anndata,report", "--positivity-threshold", "0.3", "--quiet"])
    assert rc == 0
    n = len(np.unique(cells)) - 1
    header = (out / "image_measurements.csv").read_text().splitlines()[0].split(",")
    assert {"CD3_positive_probability", "CD3_positive", "CD8_positive_probability", "CD8_positive"} <= set(header)
    assert "DAPI_positive" not in header
    feats = json.loads((out / "image.geojson").read_text())["features"]
    assert len(feats) == n
    m = feats[0]["properties"]["measurements"]
    assert 0 <= m["CD3: Positive probability"] <= 1 and m["CD8: Positive"] in (0, 1)
    assert "CD3_positive_probability" not in m  # QuPath's names only
    for f in feats:  # the threshold given is the one applied, and the class says it
        mm = f["properties"]["measurements"]
        assert mm["CD3: Positive"] == int(mm["CD3: Positive probability"] >= 0.3)
        want = f"CD3{'+' if mm['CD3: Positive'] else '-'}: CD8{'+' if mm['CD8: Positive'] else '-'}"
        assert f["properties"]["classification"]["name"] == want
    ad = anndata.read_h5ad(out / "image.h5ad")
    assert list(ad.var_names) == ["CD3", "CD8"]
    prob = ad.layers["positive_probability"]
    assert prob.shape == (n, 2) and np.isfinite(prob).all()
    assert np.array_equal(ad.layers["positive"], (prob >= 0.3).astype(np.float32))
    assert "positive:" in (out / "report.html").read_text()


def test_unscored_channels_are_nan_in_the_anndata_layers(scene):
    from phenoseg.io.tables import anndata_from_columns

    n = 3
    cols = {"CellID": np.arange(1, n + 1), "A": np.ones(n), "B": np.ones(n), "X_centroid": np.zeros(n),
            "Y_centroid": np.zeros(n), "B_positive_probability": np.array([0.1, 0.6, 0.9]),
            "B_positive": np.array([0, 1, 1])}
    ad = anndata_from_columns(cols, ["A", "B"], "nucleus", "r")
    assert np.isnan(ad.layers["positive_probability"][:, 0]).all()
    assert ad.layers["positive"][:, 1].tolist() == [0, 1, 1]
    assert "B_positive" not in ad.obs


def test_segment_with_positivity_scores_every_measured_channel(scene, tmp_path, monkeypatch):
    from phenoseg import batch

    root, cells = scene
    out = tmp_path / "seg"

    class FakeResult:  # the segmenter is not what is tested: the given cells stand in for its output
        labels = {"cells": cells.astype(np.int64)}
        scores: dict = {}
        model, pixel_size_um, choice, notes, timings = "given", 0.5, None, [], {"total_s": 0.0}

    class FakeSeg:
        def segment(self, *a, **k):
            return FakeResult()

    monkeypatch.setattr(batch, "make_segmenter", lambda options: FakeSeg())
    monkeypatch.setattr(batch, "slide_mode", lambda *a: False)
    rc = main(["segment", str(root / "image.ome.tif"), "-o", str(out), "--positivity", str(root / "model"),
               "--measure-channels", "CD3,CD8", "--outputs", "csv", "--quiet"])
    assert rc == 0
    header = (out / "image_measurements.csv").read_text().splitlines()[0].split(",")
    assert "CD3_positive_probability" in header and "CD8_positive" in header and "DAPI_positive" not in header


def test_refusals(scene, tmp_path, capsys):
    root, _ = scene
    img = str(root / "image.ome.tif")
    base = ["positivity", img, "--cells", str(root / "cells.tif"), "--model", str(root / "model"), "-o",
            str(tmp_path / "o")]
    assert main([*base, "--positivity-threshold", "1.5"]) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
    assert main([*base, "--outputs", "labels"]) == 2
    assert main(["segment", img, "-o", str(tmp_path / "s"), "--positivity-threshold", "0.4"]) == 2
    assert "--positivity-threshold needs --positivity" in capsys.readouterr().err
    rgb = tmp_path / "rgb.png"
    from PIL import Image

    Image.fromarray(np.zeros((160, 160, 3), np.uint8)).save(rgb)
    assert main(["positivity", str(rgb), "--cells", str(root / "cells.tif"), "--model", str(root / "model"),
                 "--pixel-size", "0.5", "-o", str(tmp_path / "r")]) == 1
    assert "RGB (brightfield)" in capsys.readouterr().err
    assert not (tmp_path / "r" / "rgb.geojson").exists()
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((64, 64), np.uint16))
    assert main([*base[:2], "--cells", str(small), *base[4:]]) == 1  # labels of another shape
    assert "does not match the image" in capsys.readouterr().err


def test_onnx_embeddings_equal_torch(scene):
    from phenoseg.models.zoo import load_model
    from phenoseg.phenotype.positivity import PositivityPredictor

    root, cells = scene
    image = tifffile.imread(root / "image.ome.tif").astype(np.float32)
    model = load_model(root / "model")
    ids, p_torch = PositivityPredictor(model, backend="torch").predict(image, cells, 0.5, [1, 2])
    fast = PositivityPredictor(model, backend="onnx")
    ids2, p_onnx = fast.predict(image, cells, 0.5, [1, 2])
    assert fast.backend == "onnx" and np.array_equal(ids, ids2)
    assert np.abs(p_torch - p_onnx).max() < 1e-4
    _, p_missing = fast.predict(image, cells, 0.5, [1], ids=np.array([ids[0], 9999]))
    assert np.isfinite(p_missing[0, 0]) and np.isnan(p_missing[1, 0])
