"""The Python API contract: array layouts, pixel-size precedence, per-call thresholds, the progress callback,
the per-object table driving every writer, and errors in parameter words."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
from conftest import example_rgb

import phenoseg
from phenoseg.batch import SegmentOptions, segment_batch
from phenoseg.errors import PhenosegError
from phenoseg.inference.segmenter import Segmenter
from phenoseg.phenotype.table import ColumnPass


@pytest.fixture(scope="module")
def seg(model_dir) -> Segmenter:
    return Segmenter(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.moveaxis(tifffile.imread(example_rgb()), -1, 0)


def test_array_layouts_give_the_same_labels(seg, rgb):
    ref = seg.segment(rgb, 0.5).labels["nuclei"]  # (C, Y, X)
    assert ref.max() > 0
    yxc = np.ascontiguousarray(np.moveaxis(rgb, 0, -1))
    np.testing.assert_array_equal(seg.segment(yxc, 0.5).labels["nuclei"], ref)  # RGB last axis: recognised
    rgba = np.concatenate([yxc, np.full(yxc.shape[:2] + (1,), 255, yxc.dtype)], -1)
    np.testing.assert_array_equal(seg.segment(rgba, 0.5).labels["nuclei"], ref)  # alpha dropped
    xcy = np.ascontiguousarray(np.moveaxis(rgb, 0, 1))
    np.testing.assert_array_equal(seg.segment(xcy.transpose(1, 0, 2), 0.5, axes="CYX").labels["nuclei"], ref)
    np.testing.assert_array_equal(seg.segment(np.moveaxis(rgb, 0, -1), 0.5, axes="YXC").labels["nuclei"], ref)
    with pytest.raises(PhenosegError, match="axes="):
        seg.segment(rgb, 0.5, axes="YX")
    # channels picked by name, in order
    swapped = seg.segment(rgb[[2, 1, 0]], 0.5, channels=["Channel 3", "Channel 2", "Channel 1"]).labels["nuclei"]
    np.testing.assert_array_equal(swapped, ref)


def test_pixel_size_precedence(seg, rgb_tiff):
    from_metadata = seg.segment(rgb_tiff)
    assert from_metadata.pixel_size_um == 0.5
    given = seg.segment(rgb_tiff, 0.25)  # the argument wins over the file's metadata
    assert given.pixel_size_um == 0.25 and given.labels["nuclei"].shape == from_metadata.labels["nuclei"].shape
    with pytest.raises(PhenosegError, match="pixel_size_um="):
        seg.segment(tifffile.imread(rgb_tiff))  # an array carries no pixel size
    with pytest.raises(PhenosegError, match="pixel_size_um="):
        seg.segment(rgb_tiff, -1.0)


def test_thresholds_are_per_call(seg, rgb):
    default = seg.segment(rgb, 0.5).labels["nuclei"]
    strict = seg.segment(rgb, 0.5, seed_threshold=0.99, min_area=1).labels["nuclei"]
    loose = seg.segment(rgb, 0.5, seed_threshold=0.05, min_area=1).labels["nuclei"]
    assert strict.max() < loose.max()
    np.testing.assert_array_equal(seg.segment(rgb, 0.5).labels["nuclei"], default)  # nothing sticks


def test_progress_callback(seg, rgb):
    calls = []
    seg.segment(rgb, 0.5, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 1)]
    calls.clear()
    big = np.tile(rgb, (1, 3, 3))
    seg.segment(big, 0.5, tile_size=64, progress=lambda done, total: calls.append((done, total)))
    n = calls[-1][1]
    assert n > 1 and calls == [(i, n) for i in range(1, n + 1)]
    with pytest.raises(PhenosegError, match="tile_size="):
        seg.segment(rgb, 0.5, tile_size=8)


def test_result_tables_describe_the_labels(seg, rgb):
    result = seg.segment(rgb, 0.5)
    table, labels = result.tables["nuclei"], result.labels["nuclei"]
    assert len(table) == len(np.unique(labels)) - 1
    k = int(table.ids[0])
    ys, xs = np.nonzero(labels == k)
    assert table.centroid_y[0] == pytest.approx(ys.mean()) and table.centroid_x[0] == pytest.approx(xs.mean())
    assert list(table.bbox[0]) == [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
    np.testing.assert_allclose(table.score, result.scores["nuclei"][table.ids - 1])


def test_top_level_functions(model_dir, rgb_tiff):
    result = phenoseg.segment(rgb_tiff, str(model_dir), device="cpu", seed_threshold=0.5)
    assert result.labels["nuclei"].shape == (96, 96)
    assert set(phenoseg.__all__) >= {"Segmenter", "segment", "segment_slide", "measure", "segment_batch"}


def dummy_pass() -> ColumnPass:
    """A column no writer knows about: twice each object's id."""
    return ColumnPass("Dummy score", lambda table, context: table.ids * 2.0)


def test_added_column_reaches_every_output_of_an_image(tmp_path, rgb_tiff, model_dir):
    pytest.importorskip("anndata")
    import anndata

    out = tmp_path / "out"
    result = segment_batch([rgb_tiff], SegmentOptions(model=str(model_dir), output_dir=out, quiet=True,
                                                      outputs=["geojson", "csv", "anndata"], passes=[dummy_pass()]))
    assert not result.failures
    features = json.loads((out / "he.geojson").read_text())["features"]
    assert features and all(f["properties"]["measurements"]["Dummy score"] == 2.0 * f["properties"]["measurements"]
                            ["Label"] for f in features)
    with open(out / "he_measurements.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(features) and all(float(r["Dummy score"]) == 2 * int(r["CellID"]) for r in rows)
    adata = anndata.read_h5ad(out / "he.h5ad")
    np.testing.assert_array_equal(adata.obs["Dummy score"].to_numpy(), 2.0 * adata.obs["cell_id"].to_numpy())


def test_cli_speaks_in_flags(capsys, tmp_path, rgb_tiff, model_dir):
    from phenoseg.cli import main

    nopx = tmp_path / "nopx.png"
    from PIL import Image

    Image.fromarray(tifffile.imread(rgb_tiff)).save(nopx)
    code = main(["segment", str(nopx), "-o", str(tmp_path / "o"), "--model", str(model_dir), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "--pixel-size" in err and "pixel_size_um=" not in err
    code = main(["segment", str(nopx), "-o", str(tmp_path / "o"), "--model", str(model_dir), "--workers", "3"])
    assert code == 2 and "--workers" in capsys.readouterr().err


def test_flag_translation():
    from phenoseg.cli.main import to_flags

    assert to_flags("tile_size=8: must be at least 64 px") == "--tile-size 8: must be at least 64 px"
    assert to_flags("grow=: cannot place") == "--grow: cannot place"
    assert to_flags("pass pixel_size_um= (µm per pixel)") == "pass --pixel-size (µm per pixel)"
    assert to_flags("pass data_pixel_size=monuseg=UM") == "pass --data-pixel-size monuseg=UM"
