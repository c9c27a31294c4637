"""Outputs as the clients expect them (issue "Every output opens right", items 4, 5, 6): QuPath names, MCMICRO
columns and digits, one connected piece per object."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from shapely.geometry import shape
from skimage.measure import label as connected

from phenoseg.cli.main import main
from phenoseg.inference.segmenter import Segmenter
from phenoseg.io.tables import csv_lines
from phenoseg.phenotype.measurements import measure
from phenoseg.postprocess.fragments import keep_largest_parts

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_detached_fragments_are_removed():
    lab = np.zeros((20, 20), np.uint32)
    lab[2:8, 2:8] = 1
    lab[15, 15] = 1  # a detached pixel of object 1
    lab[10:14, 10:14] = 2
    lab[8, 8] = 2  # diagonal to object 1's corner, detached from object 2
    out = keep_largest_parts(lab)
    assert out[15, 15] == 0 and out[8, 8] == 0 and (out[2:8, 2:8] == 1).all() and (out[10:14, 10:14] == 2).all()
    one = np.zeros((5, 5), np.uint32)
    one[1, 1:3] = one[2, 2] = 3  # 4-connected: one piece, kept
    assert keep_largest_parts(one) is one
    corner = np.zeros((5, 5), np.uint32)
    corner[0:2, 0:2] = corner[2, 2] = 4  # touching only at a corner: a MultiPolygon in QuPath
    assert keep_largest_parts(corner)[2, 2] == 0


def test_every_object_is_one_piece_end_to_end():
    result = Segmenter("brightfield_nuclei", device="cpu").segment(EXAMPLES / "he_dsb2018.tif")
    lab = result.labels["nuclei"]
    assert connected(lab, background=0, connectivity=1).max() == len(np.unique(lab)) - 1


def test_qupath_names_channels_and_no_stored_centroids(tmp_path):
    assert main(["segment", str(EXAMPLES / "he_dsb2018.tif"), "-o", str(tmp_path), "--outputs", "geojson,csv",
                 "--quiet"]) == 0
    features = json.loads((tmp_path / "he_dsb2018.geojson").read_text())["features"]
    meas = features[0]["properties"]["measurements"]
    assert "Area µm^2" in meas and "Red: Mean" in meas and "Blue: Mean" in meas
    assert not any(k.startswith(("Centroid", "Nucleus:")) for k in meas)
    assert all(shape(f["geometry"]).geom_type == "Polygon" for f in features)  # one piece each
    with open(tmp_path / "he_dsb2018_measurements.csv") as fh:
        header = next(csv.reader(fh))
    assert header[:4] == ["CellID", "Red", "Green", "Blue"]


def test_mcmicro_column_order_names_and_digits():
    image = np.random.default_rng(0).integers(0, 255, (2, 64, 64)).astype(np.float32)
    lab = np.zeros((64, 64), np.uint32)
    lab[5:15, 5:15], lab[30:40, 30:44] = 1, 2
    m = measure(image, lab, pixel_size_um=0.5, channel_names=["DAPI", "CD45"])
    from phenoseg.io.tables import mcmicro_columns

    cols = list(mcmicro_columns(m))
    assert cols[:3] == ["CellID", "DAPI", "CD45"] and "DAPI_intensity_median" in cols
    x = cols.index("X_centroid")
    assert all("intensity" not in c for c in cols[x:])  # every non-spatial column before X_centroid
    row = csv_lines({"CellID": np.array([1]), "X_centroid": np.array([123456.789])})[0]
    assert float(row[1]) == 123456.789  # no digits lost on a large slide
