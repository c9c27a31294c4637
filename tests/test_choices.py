"""What phenoseg decides for the user, and refuses (issue "Safe by default", items 3, 5, 6, 7): model and
channels from names and pixels, grey brightfield on the RGB model, plain (C, Y, X) TIFFs, every channel
measured, implausible pixel sizes refused, implausible results warned about."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phenoseg.cli.main import main
from phenoseg.io.images import read_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RES = {"resolution": (2.0, 2.0), "resolutionunit": "MICROMETER"}  # 0.5 µm/px


@pytest.fixture(scope="module")
def fluo() -> np.ndarray:
    return read_image(EXAMPLES / "fluo_dsb2018.tif").data[0]  # (520, 696) uint8, 126 nuclei at 0.5 µm/px


def segment(capsys, *args) -> tuple[int, str, str]:
    code = main(["segment", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def n_rows(path: Path) -> int:
    with open(path) as fh:
        return sum(1 for _ in csv.DictReader(fh))


def test_dapi_in_blue_composite_goes_to_the_fluorescence_model(tmp_path, capsys, fluo):
    rng = np.random.default_rng(0)
    other = (rng.random(fluo.shape) * 40).astype(np.uint8)  # a dim second marker in green
    rgb = np.stack([np.zeros_like(fluo), other, fluo], axis=-1)
    path = tmp_path / "composite.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", **RES)
    code, out, _ = segment(capsys, path, "-o", tmp_path / "out", "--outputs", "csv")
    assert code == 0
    assert "fluorescence_nuclei" in out and "blue" in out and "dark background" in out
    assert n_rows(tmp_path / "out" / "composite_measurements.csv") >= 110  # ~126 (it used to find 0)


def test_grey_brightfield_goes_to_the_rgb_model(tmp_path, capsys):
    he = read_image(EXAMPLES / "he_dsb2018.tif")
    grey = he.data.mean(axis=0).astype(np.uint8)
    path = tmp_path / "grey.tif"
    tifffile.imwrite(path, grey, resolution=(1 / 0.3, 1 / 0.3), resolutionunit="MICROMETER")
    code, out, _ = segment(capsys, path, "-o", tmp_path / "out", "--outputs", "csv")
    assert code == 0 and "brightfield_nuclei" in out and "grey" in out
    code, out_rgb, _ = segment(capsys, EXAMPLES / "he_dsb2018.tif", "-o", tmp_path / "rgb", "--outputs", "csv")
    n_grey = n_rows(tmp_path / "out" / "grey_measurements.csv")
    n_rgb = n_rows(tmp_path / "rgb" / "he_dsb2018_measurements.csv")
    assert n_grey >= 0.7 * n_rgb, (n_grey, n_rgb)


def test_two_channel_ome_tiff_uses_dapi_and_measures_both(tmp_path, capsys, fluo):
    cd45 = np.roll(fluo, 7, axis=1) // 2
    path = tmp_path / "panel.ome.tif"
    tifffile.imwrite(path, np.stack([cd45, fluo]), metadata={"axes": "CYX", "Channel": {"Name": ["CD45", "DAPI"]},
                                                              "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    # automatically: two channels with signal → nuclei and cells from both (ChannelNet)
    code, out, _ = segment(capsys, path, "-o", tmp_path / "auto", "--outputs", "csv")
    assert code == 0 and "fluorescence_nuclei_and_cells" in out
    with open(tmp_path / "auto" / "panel_measurements.csv") as fh:
        header = next(csv.reader(fh))
    assert "DAPI" in header and "CD45_nucleus_intensity_mean" in header  # cells, their nuclei a compartment
    # the one-channel model segments on DAPI (by its name) and measures both
    code, out, _ = segment(capsys, path, "-o", tmp_path / "out", "--outputs", "csv,geojson", "--model",
                           "fluorescence_nuclei")
    assert code == 0 and "'DAPI'" in out and "nuclear stain" in out
    with open(tmp_path / "out" / "panel_measurements.csv") as fh:
        header = next(csv.reader(fh))
    assert "CD45" in header and "DAPI" in header  # segmented on DAPI, measured on both
    assert n_rows(tmp_path / "out" / "panel_measurements.csv") >= 110
    # --channels picks the channel to segment; --measure-channels restricts the measurements
    code, out, _ = segment(capsys, path, "-o", tmp_path / "one", "--outputs", "csv", "--channels", "DAPI",
                           "--measure-channels", "CD45")
    with open(tmp_path / "one" / "panel_measurements.csv") as fh:
        header = next(csv.reader(fh))
    assert code == 0 and "CD45" in header and "DAPI" not in header


def test_named_channels_without_a_nuclear_stain_are_refused_with_a_hint(tmp_path, capsys, fluo):
    path = tmp_path / "markers.ome.tif"
    tifffile.imwrite(path, np.stack([fluo, fluo // 2]), metadata={"axes": "CYX", "Channel": {"Name": ["CD3", "CD8"]},
                                                                  "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    code, _, err = segment(capsys, path, "-o", tmp_path / "out", "--model", "fluorescence_nuclei")
    assert code == 1 and "CD3, CD8" in err and "--channels" in err and "Traceback" not in err
    code, out, _ = segment(capsys, path, "-o", tmp_path / "out", "--channels", "CD3", "--outputs", "csv")
    assert code == 0


def test_plain_cyx_tiff_and_axes_override(tmp_path, capsys, fluo):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.stack([fluo, np.zeros_like(fluo)]), **RES)  # reads as axes QYX
    image = read_image(path)
    assert image.data.shape == (2, 520, 696)
    code, out, _ = segment(capsys, path, "-o", tmp_path / "out", "--outputs", "csv")
    assert code == 0 and "only one with signal" in out
    # a (Y, X, 2) array whose last axis holds the channels
    yxc = tmp_path / "yxc.tif"
    tifffile.imwrite(yxc, np.stack([np.zeros_like(fluo), fluo], axis=-1), photometric="minisblack", **RES)
    code, out, _ = segment(capsys, yxc, "-o", tmp_path / "out2", "--outputs", "csv", "--axes", "YXC")
    assert code == 0 and n_rows(tmp_path / "out2" / "yxc_measurements.csv") >= 110
    code, _, err = segment(capsys, yxc, "-o", tmp_path / "out3", "--axes", "CYXZ")
    assert code == 1 and "does not describe" in err


@pytest.mark.parametrize("px, words", [("20", "magnification"), ("1e9", "plausible range"), ("4", "enlarged")])
def test_implausible_pixel_sizes_are_refused(tmp_path, capsys, px, words):
    code, _, err = segment(capsys, EXAMPLES / "fluo_dsb2018.tif", "-o", tmp_path / "out", "--pixel-size", px)
    assert code == 1 and words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_implausible_results_are_warned_about(tmp_path, capsys):
    # at a pixel size 5× too fine the model splits nuclei: far denser than anything it was trained on
    code, out, _ = segment(capsys, EXAMPLES / "fluo_dsb2018.tif", "-o", tmp_path / "out", "--pixel-size", "0.1",
                           "--outputs", "csv,report")
    assert code == 0 and "warning:" in out and "per mm²" in out
    assert "per mm²" in (tmp_path / "out" / "report.html").read_text()
    # no object at all on an image with content
    code, out, _ = segment(capsys, EXAMPLES / "fluo_dsb2018.tif", "-o", tmp_path / "none", "--seed-threshold", "1.5",
                           "--outputs", "csv")
    assert code == 0 and "0 nuclei found on a non-blank image" in out
