"""Measurements against regionprops, GeoJSON validity, tables, regions, the measure command."""

import csv
import json

import numpy as np
import pytest
import tifffile
from skimage.measure import regionprops

from phenoseg.cli import main
from phenoseg.io.geojson import write_geojson
from phenoseg.io.regions import keep_in_regions
from phenoseg.phenotype.compartments import assign_nuclei_to_cells, membrane_band
from phenoseg.phenotype.measurements import measure
from phenoseg.phenotype.morphology import morphology
from phenoseg.synthetic import render_image, synthetic_labels


@pytest.fixture(scope="module")
def labels():
    return synthetic_labels((220, 260), 60, seed=11)


def test_morphology_matches_regionprops(labels):
    m = morphology(labels)
    for p in regionprops(labels):
        i = p.label - 1
        assert m["area"][i] == p.area
        assert m["centroid_y"][i] == pytest.approx(p.centroid[0])
        assert m["centroid_x"][i] == pytest.approx(p.centroid[1])
        assert m["perimeter"][i] == pytest.approx(p.perimeter)
        assert m["major_axis_length"][i] == pytest.approx(p.axis_major_length)
        assert m["minor_axis_length"][i] == pytest.approx(p.axis_minor_length, abs=1e-6)
        assert m["eccentricity"][i] == pytest.approx(p.eccentricity, abs=1e-6)
        assert m["orientation"][i] == pytest.approx(p.orientation, abs=1e-6)
        assert m["extent"][i] == pytest.approx(p.extent)
        assert m["solidity"][i] == pytest.approx(p.solidity, abs=1e-12)
        assert m["max_diameter"][i] == pytest.approx(p.feret_diameter_max, rel=0.07)
        assert m["min_diameter"][i] <= m["max_diameter"][i]


def test_convex_area_is_regionprops_exactly():
    """Ragged, holed, disconnected objects, lines, diagonals and single pixels: the same convex area as
    skimage's (hull of pixel-edge midpoints, centres on the hull counted)."""
    from phenoseg.phenotype.convex import convex_areas

    rng = np.random.default_rng(3)
    lab = synthetic_labels((160, 160), 40, seed=5).astype(np.int32)
    noise = rng.random(lab.shape) < 0.03
    lab[noise] = rng.integers(0, lab.max() + 1, int(noise.sum()))
    k = int(lab.max())
    lab[2, 150], lab[5, 100:120], lab[130:150, 3] = k + 1, k + 2, k + 3
    for i in range(9):
        lab[140 + i, 40 + i] = k + 4
    ours = convex_areas(lab)
    props = regionprops(lab)
    assert len(props) == k + 4
    assert all(ours[p.label - 1] == p.area_convex for p in props)
    assert convex_areas(np.zeros((4, 4), np.int32), 3).tolist() == [0, 0, 0]


def test_csv_matches_mcquant_columns(labels, tmp_path):
    """The columns MCMICRO's mcquant computes (skimage regionprops_table on the mask, one mean per channel),
    with mcquant's names, equal to the digits written."""
    from skimage.measure import regionprops_table

    from phenoseg.io.tables import write_csv

    rng = np.random.default_rng(1)
    image = rng.integers(0, 4000, (2,) + labels.shape).astype(np.uint16)
    write_csv(tmp_path / "t.csv", measure(image, labels, pixel_size_um=0.5, channel_names=["DAPI", "CD3"]))
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    ref = regionprops_table(labels, properties=("label", "centroid", "area", "major_axis_length",
                                                "minor_axis_length", "eccentricity", "solidity", "extent",
                                                "orientation"))
    names = {"CellID": "label", "X_centroid": "centroid-1", "Y_centroid": "centroid-0", "Area": "area",
             "MajorAxisLength": "major_axis_length", "MinorAxisLength": "minor_axis_length",
             "Eccentricity": "eccentricity", "Solidity": "solidity", "Extent": "extent", "Orientation": "orientation"}
    header = list(rows[0])
    assert header[:3] == ["CellID", "DAPI", "CD3"]
    assert header.index("X_centroid") > max(i for i, h in enumerate(header) if "_intensity_" in h)
    for ours, theirs in names.items():
        np.testing.assert_allclose([float(r[ours]) for r in rows], ref[theirs], rtol=5e-9, atol=1e-9, err_msg=ours)
    for ci, ch in enumerate(["DAPI", "CD3"]):
        means = regionprops_table(labels, image[ci], properties=("intensity_mean",))["intensity_mean"]
        np.testing.assert_allclose([float(r[ch]) for r in rows], means, rtol=5e-9)


def test_intensities_match_regionprops(labels):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, (2,) + labels.shape).astype(np.uint16)
    m = measure(image, labels, pixel_size_um=0.5, channel_names=["DAPI", "CD3"])
    for p in regionprops(labels, intensity_image=np.moveaxis(image, 0, -1)):
        row = int(np.flatnonzero(m.labels == p.label)[0])
        vals = image[:, labels == p.label]
        stats = m.intensity["Nucleus"]
        np.testing.assert_allclose(stats["mean"][row], p.intensity_mean)
        np.testing.assert_allclose(stats["min"][row], p.intensity_min)
        np.testing.assert_allclose(stats["max"][row], p.intensity_max)
        np.testing.assert_allclose(stats["median"][row], np.median(vals, axis=1))
        np.testing.assert_allclose(stats["std"][row], vals.std(axis=1), rtol=1e-6)
    cols = m.qupath_columns()
    # detections as QuPath names them: unprefixed, no stored centroid
    assert "Area µm^2" in cols and "CD3: Std.Dev." in cols and not any(k.startswith("Centroid") for k in cols)
    first = regionprops(labels)[0]
    assert cols["Area µm^2"][0] == pytest.approx(first.area * 0.25)


def cells_and_nuclei():
    """Cells = nuclei grown by 3 px (touching neighbours stop each other); one extra nucleus alone."""
    from skimage.segmentation import expand_labels

    nuclei = synthetic_labels((160, 160), 25, seed=4, radius=(4, 7))
    cells = expand_labels(nuclei, 3)
    cells[cells == cells.max()] = 0  # one nucleus loses its cell: it must become a cell of its own
    return nuclei, cells


def test_assignment_and_compartments():
    nuclei, cells = cells_and_nuclei()
    cells2, nuclei2, cell_of = assign_nuclei_to_cells(nuclei, cells)
    # every nucleus in exactly one cell, every cell at most one nucleus, nucleus inside its cell
    assert set(np.unique(nuclei2)) - {0} <= set(np.unique(cells2)) - {0}
    assert np.all(cells2[nuclei2 > 0] == nuclei2[nuclei2 > 0])
    assert len(set(cell_of[1:].tolist())) == nuclei.max()
    band = membrane_band(cells2, 1)
    assert np.all(cells2[band > 0] == band[band > 0]) and 0 < (band > 0).sum() < (cells2 > 0).sum()
    image = render_image(nuclei, "fluorescence")
    m = measure(image, nuclei, cells, 0.5, ["DAPI"])
    cols = m.qupath_columns()
    for key in ("Cell: Area µm^2", "Nucleus/Cell area ratio", "Cytoplasm: DAPI: Mean", "Membrane: DAPI: Median"):
        assert key in cols
    ratio = cols["Nucleus/Cell area ratio"]
    assert np.nanmax(ratio) <= 1.0 and np.nanmin(ratio) > 0


def test_geojson_cells_valid_and_nucleus_inside(tmp_path):
    from shapely.geometry import shape

    nuclei, cells = cells_and_nuclei()
    cells2, nuclei2, _ = assign_nuclei_to_cells(nuclei, cells)
    m = measure(render_image(nuclei, "fluorescence"), nuclei, cells, 0.5, ["DAPI"])
    path = write_geojson(tmp_path / "c.geojson", cells2, "cell", None, m.per_object(), nuclei2)
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection" and len(data["features"]) == len(np.unique(cells2)) - 1
    for f in data["features"]:
        assert "objectType" not in f and f["properties"]["objectType"] == "cell"
        cell = shape(f["geometry"])
        assert cell.is_valid and cell.area > 0
        nuc = shape(f["nucleusGeometry"])
        assert nuc.is_valid and cell.buffer(1e-6).contains(nuc)
        meas = f["properties"]["measurements"]
        assert "Cell: Area µm^2" in meas and isinstance(meas["Cell: Area µm^2"], (int, float))


def test_geojson_polygon_area_and_holes(tmp_path):
    from shapely.geometry import shape

    lab = np.zeros((40, 40), np.int32)
    lab[5:25, 5:25] = 1
    lab[12:18, 12:18] = 0  # a hole
    lab[30:35, 30:38] = 2
    data = json.loads(write_geojson(tmp_path / "d.geojson", lab).read_text())
    polys = {f["properties"]["measurements"]["Label"]: shape(f["geometry"]) for f in data["features"]}
    assert polys[1].is_valid and len(polys[1].interiors) == 1
    # traced at half-pixel iso-lines: close to the pixel count
    assert polys[1].area == pytest.approx((lab == 1).sum(), rel=0.1)
    assert polys[2].bounds[0] >= 29.5 and polys[2].bounds[2] <= 38.5


def test_regions_filter():
    lab = np.zeros((20, 20), np.int32)
    lab[2:5, 2:5] = 1
    lab[12:16, 12:16] = 2
    mask = np.zeros((20, 20), bool)
    mask[10:, 10:] = True
    out = keep_in_regions(lab, mask)
    assert set(np.unique(out)) == {0, 2}


def test_measure_command_csv_anndata_geojson(tmp_path, capsys):
    nuclei, cells = cells_and_nuclei()
    img = render_image(nuclei, "fluorescence")[0]
    tifffile.imwrite(tmp_path / "img.tif", img, resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "n.tif", nuclei.astype(np.uint32))
    tifffile.imwrite(tmp_path / "c.tif", cells.astype(np.uint32))
    regions = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {
        "type": "Polygon", "coordinates": [[[0, 0], [160, 0], [160, 160], [0, 160], [0, 0]]]},
        "properties": {"objectType": "annotation"}}]}
    (tmp_path / "r.geojson").write_text(json.dumps(regions))
    out = tmp_path / "out"
    code = main(["measure", str(tmp_path / "img.tif"), "--nuclei", str(tmp_path / "n.tif"), "--cells",
                 str(tmp_path / "c.tif"), "-o", str(out), "--outputs", "csv,anndata,geojson,report",
                 "--regions", str(tmp_path / "r.geojson")])
    assert code == 0, capsys.readouterr().err
    with open(out / "img_measurements.csv") as fh:
        rows = list(csv.DictReader(fh))
    for col in ("CellID", "X_centroid", "Y_centroid", "Area", "MajorAxisLength", "Eccentricity", "Solidity",
                "Extent", "Orientation", "Channel 1"):
        assert col in rows[0]
        float(rows[0][col])
    import anndata

    adata = anndata.read_h5ad(out / "img.h5ad")
    assert adata.n_obs == len(rows) and adata.X.shape[1] == 1
    np.testing.assert_allclose(adata.obsm["spatial"][:, 0], [float(r["X_centroid"]) for r in rows], rtol=1e-5)
    assert adata.uns["spatialdata_attrs"]["instance_key"] == "cell_id"
    assert list(adata.obs["cell_id"]) == [int(r["CellID"]) for r in rows]
    assert (out / "img.geojson").is_file() and (out / "report.html").is_file()
    tifffile.imwrite(tmp_path / "small.tif", cells[:50].astype(np.uint32))
    code = main(["measure", str(tmp_path / "img.tif"), "--nuclei", str(tmp_path / "n.tif"), "-o", str(out / "x"),
                 "--cells", str(tmp_path / "small.tif")])
    err = capsys.readouterr().err
    assert code == 1 and "does not match the image" in err and "Traceback" not in err
