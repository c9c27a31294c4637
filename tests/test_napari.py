"""The napari plugin: reader round trip, the widget end to end (in a thread, with features and classes),
Cancel, a bad layer, Save; napari and Qt stay out of ``import phenoseg`` and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

if not os.environ.get("DISPLAY"):  # headless: Qt without a screen (the rendering test needs Xvfb)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
napari = pytest.importorskip("napari", reason="the napari extra is part of the test extra")  # noqa: F841
from napari.components import ViewerModel  # noqa: E402

from phenoseg.napari_plugin import reader, sample  # noqa: E402
from phenoseg.napari_plugin import widget as widget_module  # noqa: E402


@pytest.fixture
def notes(monkeypatch):
    """Notifications the widget shows, by kind."""
    seen: dict[str, list[str]] = {"error": [], "info": [], "warning": []}
    for kind in seen:
        monkeypatch.setattr(widget_module, f"show_{kind}", lambda m, k=kind: seen[k].append(m))
    return seen


def make_widget(qtbot, layer_data=None):
    viewer = ViewerModel()
    data, kwargs, _ = (layer_data or sample.he_example())[0]
    viewer.add_image(data, **kwargs)
    w = widget_module.SegmentWidget(viewer)
    qtbot.addWidget(w)
    return viewer, w


def wait(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: w.worker is None, timeout=timeout)


def test_widget_runs_end_to_end_and_saves(qtbot, notes, tmp_path):
    viewer, w = make_widget(qtbot)
    assert w.layer_box.currentText() == "he_dsb2018"
    assert w.pixel_size.value() == pytest.approx(0.3)  # read from the layer's scale
    w.want_classes.setChecked(True)
    seen = []
    w._relay.progressed.connect(lambda s, d, t: seen.append(s))
    w.run()
    assert not w.run_button.isEnabled() and w.cancel_button.isEnabled()  # running in a thread
    wait(qtbot, w)
    assert notes["error"] == []
    labels = [layer for layer in viewer.layers if layer.__class__.__name__ == "Labels"]
    assert [layer.name for layer in labels] == ["he_dsb2018 nuclei"]
    lab = labels[0]
    n = int(np.count_nonzero(np.bincount(lab.data.ravel())[1:]))
    assert 60 < n < 200 and lab.scale[-1] == pytest.approx(0.3)
    feats = lab.features
    assert len(feats) == n and set(feats["index"]) == set(np.unique(lab.data)) - {0}
    assert {"Area", "X_centroid", "class", "detection_probability"} <= set(feats.columns)
    # classes coloured: an object's colour is its class's
    first = int(feats["index"].iloc[0])
    cls = feats["class"].iloc[0]
    colour = np.asarray(lab.colormap.map(np.array([first])))[0][:3]
    want = np.array(w.result.class_colours[cls]) / 255
    np.testing.assert_allclose(colour, want, atol=0.01)
    assert "segmenting" in seen and "classifying" in seen and f"{n} nuclei: " in w.status.text()
    assert f"{(feats['class'] == cls).sum()} {cls}" in w.status.text()  # objects per class
    assert w.save_button.isEnabled()
    written = w.save(tmp_path / "out")
    names = {p.name for p in written}
    assert {"he_dsb2018_nuclei.tif", "he_dsb2018.geojson", "he_dsb2018_measurements.csv",
            "he_dsb2018_overlay.png"} <= names


def test_reader_round_trip(qtbot, tmp_path):
    viewer, w = make_widget(qtbot)
    w.want_classes.setChecked(True)
    w.run()
    wait(qtbot, w)
    w.save(tmp_path)
    lab = w.result.labels["nuclei"]
    path = tmp_path / "he_dsb2018_nuclei.tif"
    read = reader.get_reader(str(path))
    assert read is not None
    (data, kwargs, kind), = read(str(path))
    assert kind == "labels" and np.array_equal(data, lab)
    assert kwargs["scale"] == pytest.approx((0.3, 0.3))
    feats = kwargs["features"]
    assert list(feats["index"]) == list(feats["CellID"]) and len(feats) == len(np.unique(lab)) - 1
    assert "class" in feats.columns and len(kwargs["colormap"]) == len(feats) + 2
    # GeoJSON: one polygon per object, coloured by class, measurements as features
    geojson = str(tmp_path / "he_dsb2018.geojson")
    (shapes, skw, skind), = reader.get_reader(geojson)(geojson)
    assert skind == "shapes" and len(shapes) == len(feats) and "Area µm^2" in skw["features"].columns
    # napari's (row, column) order: a polygon's vertices lie on its object
    k = int(feats["CellID"].iloc[0])
    ys, xs = np.nonzero(lab == k)
    poly = shapes[0]
    assert ys.min() <= poly[:, 0].mean() <= ys.max() + 1 and xs.min() <= poly[:, 1].mean() <= xs.max() + 1
    # the table alone: points at the centroids
    (pts, pkw, pkind), = reader.get_reader(str(tmp_path / "he_dsb2018_measurements.csv"))(
        str(tmp_path / "he_dsb2018_measurements.csv"))
    assert pkind == "points" and pts.shape == (len(feats), 2)
    # the layers open in a viewer
    viewer.add_labels(data, **kwargs)
    viewer.add_shapes(shapes, **{k: v for k, v in skw.items()})
    assert reader.get_reader(str(tmp_path / "he_dsb2018_overlay.png")) is None


def test_reader_points_and_omezarr(tmp_path):
    import json

    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [10.0, 20.0]},
         "properties": {"objectType": "annotation", "classification": {"name": "tumour", "color": [200, 0, 0]}}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [30.0, 5.0]},
         "properties": {"classification": {"name": "lymphocyte", "color": [0, 0, 255]}}}]}
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps(doc))
    (pts, kw, kind), = reader.get_reader(str(path))(str(path))
    assert kind == "points" and pts.tolist() == [[20.0, 10.0], [5.0, 30.0]]
    assert list(kw["features"]["class"]) == ["tumour", "lymphocyte"]
    np.testing.assert_allclose(kw["face_color"][0], [200 / 255, 0, 0, 1])

    from phenoseg.io.omezarr import LabelsWriter

    lab = np.zeros((700, 600), np.uint32)
    lab[100:140, 200:260] = 7
    out = tmp_path / "slide.ome.zarr"
    writer = LabelsWriter(out, "nuclei", lab.shape, 0.5, chunk=256)
    for y0 in range(0, 700, 256):
        writer.write_rows(y0, lab[y0 : y0 + 256])
    levels = writer.finish(min_side=128)
    (arrays, zkw, zkind), = reader.get_reader(str(out))(str(out))
    assert zkind == "labels" and zkw["multiscale"] and len(arrays) == levels > 1
    assert np.array_equal(np.asarray(arrays[0]), lab) and zkw["scale"] == pytest.approx((0.5, 0.5))
    assert arrays[1].shape[0] < 700  # lazy levels, coarser
    (tmp_path / "slide_measurements.csv").write_text("CellID,Area,X_centroid,Y_centroid\n7,2400,229.5,119.5\n")
    (_, zkw, _), = reader.get_reader(str(out))(str(out))
    assert list(zkw["features"]["index"]) == [7]  # the slide's table as features


def test_cancel_discards_the_run(qtbot, notes):
    viewer, w = make_widget(qtbot)
    w.run()
    w.cancel()
    wait(qtbot, w)
    assert w.status.text() == "cancelled" and notes["info"] == ["phenoseg: cancelled"]
    assert [layer.__class__.__name__ for layer in viewer.layers] == ["Image"] and w.result is None
    assert w.run_button.isEnabled() and not w.save_button.isEnabled()


def test_bad_layers_give_one_plain_message(qtbot, notes):
    stack = [(np.random.default_rng(0).random((5, 64, 64)).astype(np.float32), {"name": "zstack"}, "image")]
    viewer, w = make_widget(qtbot, stack)
    w.pixel_size.setValue(0.5)
    w.run()
    wait(qtbot, w)
    assert len(notes["error"]) == 1 and "3-D" in notes["error"][0] and "Traceback" not in notes["error"][0]
    assert [layer.__class__.__name__ for layer in viewer.layers] == ["Image"]
    # no pixel size: said before any work
    viewer2, w2 = make_widget(qtbot, [(np.zeros((64, 64), np.float32) + 1, {"name": "plain"}, "image")])
    w2.run()
    wait(qtbot, w2)
    assert "no pixel size" in notes["error"][-1]
    # a whole-slide (multiscale) layer: pointed to the slide command, nothing loaded
    pyramid = [np.zeros((256, 256), np.uint8), np.zeros((128, 128), np.uint8)]
    viewer.add_image(pyramid, multiscale=True, name="slide")
    w.layer_box.setCurrentText("slide")
    w.run()
    assert "phenoseg segment SLIDE" in notes["error"][-1] and w.worker is None
    # a model without cells asked for cells only: refused
    viewer3, w3 = make_widget(qtbot)
    w3.want_nuclei.setChecked(False)
    w3.run()
    wait(qtbot, w3)
    assert "not cells" in notes["error"][-1]


def test_phenoseg_and_cli_import_no_napari_or_qt():
    code = ("import sys, phenoseg, phenoseg.cli.main, phenoseg.batch;"
            "bad = [m for m in ('napari', 'qtpy', 'PyQt5', 'PySide6') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_manifest_registers_reader_widget_and_samples():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("phenoseg")
    assert [s.key for s in manifest.contributions.sample_data] == ["he", "fluorescence"]
    assert manifest.contributions.widgets[0].display_name == "Segment and classify"
    for cmd in manifest.contributions.commands:  # every command's python_name resolves
        mod, _, attr = cmd.python_name.partition(":")
        assert callable(getattr(__import__(mod, fromlist=[attr]), attr))
    layers = sample.fluorescence_example()
    assert layers[0][0].ndim == 2 and layers[0][1]["rgb"] is False


@pytest.mark.skipif(not os.environ.get("DISPLAY") and not os.environ.get("CI"),
                    reason="a rendering viewer needs a display (CI runs this under Xvfb)")
def test_real_viewer_docks_the_widget_and_renders(make_napari_viewer, qtbot, tmp_path):
    assert os.environ.get("DISPLAY"), "CI must run the suite under Xvfb (xvfb-run)"
    viewer = make_napari_viewer()
    viewer.open_sample("phenoseg", "he")
    _, w = viewer.window.add_plugin_dock_widget("phenoseg", "Segment and classify")
    w.run()
    wait(qtbot, w)
    assert any(layer.name == "he_dsb2018 nuclei" for layer in viewer.layers)
    shot = viewer.screenshot(canvas_only=False)
    assert shot.ndim == 3 and shot.shape[2] == 4 and shot[..., :3].std() > 5


def test_channel_stack_gives_nuclei_and_cells(qtbot, notes):
    img = sample.fluorescence_example()[0][0].astype(np.float32)
    from scipy import ndimage as ndi

    membrane = ndi.gaussian_gradient_magnitude(ndi.grey_dilation(img, size=9), 2)  # a rough cell-edge channel
    stack = [(np.stack([img, membrane]), {"name": "two", "metadata": {"channel_names": ["DAPI", "edges"]}}, "image")]
    viewer, w = make_widget(qtbot, stack)
    w.pixel_size.setValue(0.5)
    w.model_box.setCurrentText("fluorescence_nuclei_and_cells")
    w.channels_first.setChecked(True)
    w.run()
    wait(qtbot, w)
    assert notes["error"] == []
    layers = {layer.name: layer for layer in viewer.layers if layer.__class__.__name__ == "Labels"}
    assert set(layers) == {"two nuclei", "two cells"}
    nuc, cel = layers["two nuclei"].data, layers["two cells"].data
    assert nuc.max() > 10 and set(np.unique(nuc)) <= set(np.unique(cel))  # a nucleus carries its cell's id
    assert "DAPI" in layers["two cells"].features.columns  # measured on the named channels
    assert "edges_positive_probability" not in layers["two cells"].features.columns  # not asked for


def test_positivity_checkbox_adds_marker_columns(qtbot, notes):
    img = sample.fluorescence_example()[0][0].astype(np.float32)
    stack = [(np.stack([img, img[::-1].copy()]), {"name": "pos", "metadata": {"channel_names": ["DAPI", "CD3"]}},
              "image")]
    viewer, w = make_widget(qtbot, stack)
    w.pixel_size.setValue(0.5)
    w.model_box.setCurrentText("fluorescence_nuclei_and_cells")
    w.channels_first.setChecked(True)
    w.want_positivity.setChecked(True)
    w.run()
    wait(qtbot, w)
    assert notes["error"] == []
    cells = next(layer for layer in viewer.layers if layer.name == "pos cells")
    p = cells.features["CD3_positive_probability"].to_numpy()
    assert len(p) > 10 and np.all((p >= 0) & (p <= 1))
    assert set(cells.features["CD3_positive"].unique()) <= {0, 1}
    assert cells.features["class"].astype(str).str.contains("CD3").all()  # composite class: DAPI±: CD3±
