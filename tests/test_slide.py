"""Whole-slide mode: lazy pyramidal readers, tiled = untiled, resume after a kill, tissue mask, bad slides."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phenoseg.errors import PhenosegError
from phenoseg.evaluation.matching import match_counts, summarise
from phenoseg.inference.segmenter import Segmenter
from phenoseg.inference.slide_pipeline import SlideOptions, segment_slide
from phenoseg.inference.tiling import balanced_core
from phenoseg.io.images import read_image
from phenoseg.io.omezarr import read_labels_level
from phenoseg.io.slide import open_slide

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "he_dsb2018.tif"


def he_mosaic(height: int, width: int) -> np.ndarray:
    """(Y, X, 3) uint8 H&E-like image made of the bundled example tile, mirrored so seams look natural."""
    tile = np.moveaxis(read_image(EXAMPLE).data, 0, -1)
    block = np.concatenate([tile, tile[:, ::-1]], 1)
    block = np.concatenate([block, block[::-1]], 0)
    reps = (height // block.shape[0] + 1, width // block.shape[1] + 1, 1)
    return np.ascontiguousarray(np.tile(block, reps)[:height, :width])


def write_pyramid(path: Path, data: np.ndarray, pixel_size: float, levels: int = 3) -> Path:
    """A tiled pyramidal OME-TIFF (sub-IFDs, 2× per level) with its physical pixel size."""
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        opts = dict(tile=(128, 128), compression="zlib", photometric="rgb")
        tw.write(data, subifds=levels - 1, metadata={"axes": "YXS", "PhysicalSizeX": pixel_size,
                                                     "PhysicalSizeY": pixel_size}, **opts)
        for i in range(1, levels):
            tw.write(data[:: 2**i, :: 2**i], subfiletype=1, **opts)
    return path


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return Segmenter("brightfield_nuclei", device="cpu")


@pytest.fixture(scope="module")
def slide05(tmp_path_factory) -> Path:
    return write_pyramid(tmp_path_factory.mktemp("slides") / "he.ome.tif", he_mosaic(560, 600), 0.5)


def test_pyramidal_ome_tiff_reader(tmp_path):
    data = he_mosaic(512, 640)
    path = write_pyramid(tmp_path / "p.ome.tif", data, 0.25)
    with open_slide(path) as s:
        assert s.channel_names == ["Red", "Green", "Blue"] and s.rgb
        assert [lv.pixel_size_um for lv in s.levels] == pytest.approx([0.25, 0.5, 1.0])
        assert [(lv.height, lv.width) for lv in s.levels] == [(512, 640), (256, 320), (128, 160)]
        region = s.read(1, 10, 50, 20, 90)
        assert region.shape == (3, 40, 70)
        np.testing.assert_array_equal(region, np.moveaxis(data[::2, ::2][10:50, 20:90], -1, 0))
        assert s.choose_level(0.5) == 1 and s.choose_level(0.3) == 0 and s.choose_level(4.0) == 2
        # reads beyond the border are clipped, not padded with garbage
        assert s.read(2, 100, 200, 150, 400).shape == (3, 28, 10)


def test_tiled_equals_untiled_with_seam_objects(tmp_path, seg, slide05):
    res = segment_slide(slide05, seg, tmp_path, "he", SlideOptions(tile=192, progress=False, tissue_mask=False))
    tiled = read_labels_level(tmp_path / "he.ome.zarr")
    untiled = seg.segment(read_image(slide05)).labels["nuclei"]
    assert tiled.shape == untiled.shape == (560, 600)
    scores = summarise(match_counts(untiled, tiled))
    assert scores["f1@0.5"] >= 0.995, scores  # in practice 1.0: tiles start on the network's stride grid
    # objects of the untiled result that straddle a tile seam (cores: 560 px in 3 rows, 600 px in 4 columns,
    # balanced and on the network's stride grid)
    stride = seg.model_for(3).stride
    th, tw = balanced_core(560, 192, stride), balanced_core(600, 192, stride)
    row_seams, col_seams = range(th, 560, th), range(tw, 600, tw)
    assert len(row_seams) == 2 and len(col_seams) == 3
    crossing = 0
    from scipy import ndimage as ndi

    for sl in ndi.find_objects(untiled.astype(np.int64)):
        if sl is None:
            continue
        ys, xs = sl
        if any(ys.start < b < ys.stop for b in row_seams) or any(xs.start < b < xs.stop for b in col_seams):
            crossing += 1
    assert crossing > 10
    assert res.n_objects["nuclei"] == len(np.unique(tiled)) - 1
    assert res.tiles == 12 and res.level == 0


def test_level_choice_reads_the_matching_pyramid_level(tmp_path, seg):
    path = write_pyramid(tmp_path / "s40x.ome.tif", he_mosaic(640, 512), 0.25)
    res = segment_slide(path, seg, tmp_path, "s40x", SlideOptions(tile=256, progress=False, tissue_mask=False,
                                                                  outputs=["zarr", "geojson"]))
    assert res.level == 1 and res.model_shape == (320, 256)
    lab = read_labels_level(tmp_path / "s40x.ome.zarr")
    assert lab.shape == (320, 256) and lab.max() > 20
    # GeoJSON coordinates are in level-0 pixels (twice the model grid here)
    feats = json.loads((tmp_path / "s40x.geojson").read_text())["features"]
    geoms = [f["geometry"] for f in feats]
    assert {g["type"] for g in geoms} <= {"Polygon", "MultiPolygon"}
    # outer rings: one per Polygon, one per part of a MultiPolygon (an object touching itself at a corner)
    rings = [g["coordinates"][0] for g in geoms if g["type"] == "Polygon"]
    rings += [part[0] for g in geoms if g["type"] == "MultiPolygon" for part in g["coordinates"]]
    xs = [pt[0] for ring in rings for pt in ring]
    assert max(xs) > 300 and max(xs) <= 512
    attrs = json.loads((tmp_path / "s40x.ome.zarr" / "labels" / "nuclei" / ".zattrs").read_text())
    scales = [d["coordinateTransformations"][0]["scale"] for d in attrs["multiscales"][0]["datasets"]]
    assert scales[0] == [0.5, 0.5] and attrs["image-label"]["version"] == "0.4"
    assert json.loads((tmp_path / "s40x.ome.zarr" / "labels" / ".zattrs").read_text()) == {"labels": ["nuclei"]}


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path, seg, slide05):
    opts = dict(tile=192, progress=False, tissue_mask=False, outputs=["zarr", "geojson", "csv"])
    full = tmp_path / "full"
    segment_slide(slide05, seg, full, "he", SlideOptions(**opts))
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        segment_slide(slide05, seg, part, "he", SlideOptions(stop_after_tiles=5, **opts))
    # nothing final exists yet: only the partial store and the run state
    assert not (part / "he.ome.zarr").exists() and not (part / "he.geojson").exists()
    assert (part / ".he.phenoseg-run" / "state.json").is_file()
    res = segment_slide(slide05, seg, part, "he", SlideOptions(**opts))
    assert res.resumed_from_row == 1
    for level in (0, 1):
        np.testing.assert_array_equal(read_labels_level(full / "he.ome.zarr", level=level),
                                      read_labels_level(part / "he.ome.zarr", level=level))
    assert (full / "he.geojson").read_text() == (part / "he.geojson").read_text()
    assert (full / "he_measurements.csv").read_text() == (part / "he_measurements.csv").read_text()
    assert not (part / ".he.phenoseg-run").exists()


def test_tissue_mask_skips_glass(tmp_path, seg):
    data = he_mosaic(400, 800)
    data[:, :400] = 244  # bare glass on the left half
    path = write_pyramid(tmp_path / "glass.ome.tif", data, 0.5, levels=2)
    res = segment_slide(path, seg, tmp_path, "glass", SlideOptions(tile=128, progress=False, outputs=["csv"]))
    assert res.tiles_skipped >= 4
    rows = (tmp_path / "glass_measurements.csv").read_text().splitlines()
    header = rows[0].split(",")
    xs = np.array([float(r.split(",")[header.index("X_centroid")]) for r in rows[1:]])
    assert len(xs) > 20 and xs.min() > 330


def test_ome_zarr_input(tmp_path, seg):
    import zarr

    data = np.moveaxis(he_mosaic(300, 300), -1, 0)
    root = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=data, chunks=(3, 128, 128))
    root.create_array("1", data=data[:, ::2, ::2], chunks=(3, 128, 128))
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"}], "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.5, 0.5]}]},
        {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}]
    root.attrs["omero"] = {"channels": [{"label": n} for n in ("red", "green", "blue")]}
    with open_slide(tmp_path / "img.ome.zarr") as s:
        assert s.pixel_size_um == 0.5 and s.channel_names == ["red", "green", "blue"] and len(s.levels) == 2
    res = segment_slide(tmp_path / "img.ome.zarr", seg, tmp_path / "out", "img",
                        SlideOptions(tile=160, progress=False, tissue_mask=False, outputs=["zarr"]))
    assert res.n_objects["nuclei"] > 20
    assert read_labels_level(tmp_path / "out" / "img.ome.zarr").shape == (300, 300)


def test_output_readable_by_ome_zarr(tmp_path, seg, slide05):
    ome_zarr = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    segment_slide(slide05, seg, tmp_path, "he", SlideOptions(tile=256, progress=False, tissue_mask=False,
                                                             outputs=["zarr"]))
    nodes = list(ome_zarr.Reader(parse_url(str(tmp_path / "he.ome.zarr" / "labels" / "nuclei")))())
    node = next(n for n in nodes if any(type(spec).__name__ == "Label" for spec in n.specs))
    shapes = [tuple(d.shape) for d in node.data]
    assert shapes[0] == (560, 600) and len(shapes) >= 2
    # the root is an image with the labels under it: what napari-ome-zarr and validators open
    nodes = list(ome_zarr.Reader(parse_url(str(tmp_path / "he.ome.zarr")))())
    image = nodes[0]
    assert type(image.specs[0]).__name__ == "Multiscales" and tuple(image.data[0].shape) == (3, 560, 600)
    assert any(type(spec).__name__ == "Label" for n in nodes for spec in n.specs)
    assert image.metadata["channel_names"] == ["Red", "Green", "Blue"]
    pixels = np.asarray(image.data[0][:, 100:200, 100:200])
    assert pixels.dtype == np.uint8 and pixels.std() > 5  # the slide's pixels, not an empty array


def test_output_passes_the_ome_zarr_models_validator(tmp_path, seg, slide05):
    models = pytest.importorskip("ome_zarr_models.v04")
    import zarr

    segment_slide(slide05, seg, tmp_path, "he", SlideOptions(tile=256, progress=False, tissue_mask=False,
                                                             outputs=["zarr"]))
    group = zarr.open_group(str(tmp_path / "he.ome.zarr"), mode="r")
    image = models.Image.from_zarr(group)  # raises on an invalid image, labels included
    assert [d.path for d in image.attributes.multiscales[0].datasets][:2] == ["0", "1"]
    assert image.labels is not None


def test_truncated_slide_is_a_clear_error(tmp_path, slide05, capsys):
    from phenoseg.cli import main

    bad = tmp_path / "bad.ome.tif"
    raw = slide05.read_bytes()
    bad.write_bytes(raw[: len(raw) // 3])
    junk = tmp_path / "junk.svs"
    junk.write_bytes(b"not a slide at all" * 100)
    out = tmp_path / "out"
    code = main(["segment", str(bad), str(junk), "-o", str(out), "--outputs", "zarr,geojson", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and "bad.ome.tif" in err and "junk.svs" in err
    leftovers = [p.name for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    assert not [n for n in leftovers if n.endswith((".geojson", ".ome.zarr"))]
    with pytest.raises(PhenosegError):
        with open_slide(junk) as s:
            s.read(0, 0, 10, 0, 10)


def test_cli_large_image_writes_ome_zarr(tmp_path, monkeypatch, slide05):
    import phenoseg.inference.segmenter as segmenter_module
    from phenoseg.cli import main

    monkeypatch.setattr(segmenter_module, "AUTO_TILE", 256)
    out = tmp_path / "out"
    assert main(["segment", str(slide05), "-o", str(out), "--quiet", "--no-tissue-mask"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["he.geojson", "he.ome.zarr", "he_measurements.csv"]
    # --outputs can still ask for a label TIFF (a tiled BigTIFF written from the zarr)
    assert main(["segment", str(slide05), "-o", str(out), "--quiet", "--outputs", "labels"]) == 0
    np.testing.assert_array_equal(tifffile.imread(out / "he_nuclei.tif"), read_labels_level(out / "he.ome.zarr"))


@pytest.mark.slow
def test_cli_dask_local_cluster(tmp_path, slide05):
    pytest.importorskip("dask.distributed")
    from phenoseg.cli import main

    second = tmp_path / "he2.ome.tif"
    shutil.copy(slide05, second)
    out = tmp_path / "out"
    code = main(["segment", str(slide05), str(second), "-o", str(out), "--outputs", "zarr,csv", "--dask",
                 "--workers", "2", "--quiet", "--tile-size", "256"])
    assert code == 0
    a = read_labels_level(out / "he.ome.zarr")
    b = read_labels_level(out / "he2.ome.zarr")
    np.testing.assert_array_equal(a, b)
    assert a.max() > 50


def test_svs_pixel_size_and_region(tmp_path):
    data = he_mosaic(512, 768)
    path = tmp_path / "scan.svs"
    desc = "Aperio Image Library v12.0.15\n768x512 [0,0 768x512] (256x256) RAW|AppMag = 20|MPP = 0.4990"
    tifffile.imwrite(path, data, tile=(256, 256), photometric="rgb", description=desc)
    with open_slide(path) as s:  # tiffslide when installed, else tifffile's SVS support
        assert s.pixel_size_um == pytest.approx(0.499) and s.rgb and s.shape_yx == (512, 768)
        np.testing.assert_array_equal(s.read(0, 100, 140, 300, 360), np.moveaxis(data[100:140, 300:360], -1, 0))


@pytest.mark.slow
def test_dask_tiles_of_one_slide_equal_local_tiles(tmp_path, slide05):
    pytest.importorskip("dask.distributed")
    from phenoseg.cli import main

    common = ["--outputs", "zarr,geojson", "--quiet", "--tile-size", "192", "--no-tissue-mask"]
    assert main(["segment", str(slide05), "-o", str(tmp_path / "local"), *common]) == 0
    assert main(["segment", str(slide05), "-o", str(tmp_path / "dask"), "--dask", "--workers", "2", *common]) == 0
    np.testing.assert_array_equal(read_labels_level(tmp_path / "local" / "he.ome.zarr"),
                                  read_labels_level(tmp_path / "dask" / "he.ome.zarr"))
    assert (tmp_path / "local" / "he.geojson").read_text() == (tmp_path / "dask" / "he.geojson").read_text()


def test_added_column_reaches_the_slide_outputs(tmp_path, slide05):
    from phenoseg.batch import SegmentOptions, segment_batch
    from phenoseg.phenotype.table import ColumnPass

    dummy = ColumnPass("Dummy score", lambda table, context: np.full(len(table), 7.0))
    out = tmp_path / "out"
    result = segment_batch([slide05], SegmentOptions(model="brightfield_nuclei", device="cpu", output_dir=out,
                                                     outputs=["zarr", "geojson", "csv"], tile_size=192, quiet=True,
                                                     passes=[dummy]))
    assert not result.failures, result.failures
    features = json.loads((out / "he.geojson").read_text())["features"]
    assert len(features) > 50 and all(f["properties"]["measurements"]["Dummy score"] == 7.0 for f in features)
    rows = (out / "he_measurements.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("Dummy score")
    assert len(rows) - 1 == len(features) and all(r.split(",")[col] == "7" for r in rows[1:])


def test_slide_honours_regions_and_says_what_it_cannot_write(tmp_path, slide05, capsys):
    from phenoseg.cli import main

    # the left 300 px of the slide (level-0 pixel coordinates, as QuPath writes annotations)
    regions = tmp_path / "r.geojson"
    regions.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {
        "type": "Polygon", "coordinates": [[[0, 0], [300, 0], [300, 560], [0, 560], [0, 0]]]},
        "properties": {"objectType": "annotation"}}]}))
    common = ["--outputs", "zarr,geojson", "--tile-size", "192", "--no-tissue-mask", "--quiet"]
    assert main(["segment", str(slide05), "-o", str(tmp_path / "all"), *common]) == 0
    assert main(["segment", str(slide05), "-o", str(tmp_path / "left"), "--regions", str(regions), *common]) == 0

    def centroids_x(folder):
        features = json.loads((folder / "he.geojson").read_text())["features"]
        from shapely.geometry import shape

        return np.array([shape(f["geometry"]).centroid.x for f in features])

    everything, left = centroids_x(tmp_path / "all"), centroids_x(tmp_path / "left")
    assert len(left) > 20 and (left < 300).all()
    assert abs(len(left) - int((everything < 300).sum())) <= 2
    from phenoseg.phenotype.table import object_centroids

    area, _, cx = object_centroids(read_labels_level(tmp_path / "left" / "he.ome.zarr"))
    assert (cx[area > 0][1:] + 0.5 < 300).all()  # the label image holds the same objects
    # an output that cannot be written for a slide is said, the others are written
    code = main(["segment", str(slide05), "-o", str(tmp_path / "o2"), "--outputs", "overlay,zarr"])
    assert code == 0 and "not written: overlay" in capsys.readouterr().out
    assert (tmp_path / "o2" / "he.ome.zarr").is_dir()


def test_top_level_segment_slide(tmp_path, slide05):
    import phenoseg

    res = phenoseg.segment_slide(slide05, tmp_path / "out", model="brightfield_nuclei", device="cpu", tile=192,
                                 progress=False, tissue_mask=False, channels=["red", "green", "blue"],
                                 outputs=["zarr", "csv"], seed_threshold=0.6)
    assert res.n_objects["nuclei"] > 50
    labels = read_labels_level(tmp_path / "out" / "he.ome.zarr")
    assert len(np.unique(labels)) - 1 == res.n_objects["nuclei"]
    with pytest.raises(PhenosegError, match="channel"):
        phenoseg.segment_slide(slide05, tmp_path / "bad", channels=["DAPI"], progress=False)


def test_slide_writes_anndata_with_the_csv_rows(tmp_path, seg, slide05):
    anndata = pytest.importorskip("anndata")
    import csv

    res = segment_slide(slide05, seg, tmp_path, "he", SlideOptions(tile=256, progress=False, tissue_mask=False,
                                                                   outputs=["csv", "anndata"]))
    adata = anndata.read_h5ad(tmp_path / "he.h5ad")
    with open(tmp_path / "he_measurements.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert adata.n_obs == len(rows) == res.n_objects["nuclei"] > 20
    assert list(adata.var_names) == ["Red", "Green", "Blue"] and "nucleus_median" in adata.layers
    np.testing.assert_allclose(adata.obsm["spatial"][:, 0], [float(r["X_centroid"]) for r in rows])
    np.testing.assert_allclose(adata.X[:, 0], [float(r["Red"]) for r in rows], rtol=1e-6)
    assert adata.uns["spatialdata_attrs"]["instance_key"] == "cell_id"
