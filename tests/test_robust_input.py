"""Artefacts that used to take over the normalisation or reject a whole image (issue "Safe by default",
items 4 and 8): one saturated spot, hot pixels, NaN padding, a blank field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from phenoseg.cli.main import main
from phenoseg.inference.segmenter import Segmenter
from phenoseg.io.images import read_image
from phenoseg.normalise import normalisation_stats, normalise_with

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fluo_dsb2018.tif"


@pytest.fixture(scope="module")
def fluo():
    image = read_image(EXAMPLE)
    seg = Segmenter("fluorescence_nuclei", device="cpu")
    return seg, image, len(seg.segment(image).tables["nuclei"])


def test_normalisation_ignores_a_saturated_spot_and_hot_pixels():
    rng = np.random.default_rng(0)
    clean = rng.gamma(2.0, 50.0, (1, 400, 400)).astype(np.float32)  # a 16-bit-like fluorescence field
    ref = normalisation_stats(clean)
    spot = clean.copy()
    spot[:, 100:120, 100:120] = 65535  # 0.25 % of the image
    hot = clean.copy()
    hot[:, rng.integers(0, 400, 320), rng.integers(0, 400, 320)] = 65535  # 0.2 %
    for bad in (spot, hot):
        stats = normalisation_stats(bad)
        assert abs(stats[1, 0] - ref[1, 0]) < 0.05 * ref[1, 0]  # the high bound stays the tissue's
        out = normalise_with(bad, stats)
        assert out.max() <= (stats[3, 0] - stats[0, 0]) / (stats[1, 0] - stats[0, 0]) + 1e-5  # clamped
    # an isolated hot pixel takes its neighbourhood's median
    out = normalise_with(hot, normalisation_stats(hot))
    assert np.median(out) == pytest.approx(np.median(normalise_with(clean, ref)), abs=0.01)


def test_clean_image_keeps_its_plain_percentiles():
    rng = np.random.default_rng(1)
    x = rng.normal(100, 10, (2, 300, 300)).astype(np.float32)
    stats = normalisation_stats(x)
    lo, hi = np.percentile(x, 0.1, axis=(1, 2)), np.percentile(x, 99.9, axis=(1, 2))
    assert np.abs(stats[0] - lo).max() < 0.02 * (hi - lo).min()  # within 2 % of the range
    assert np.abs(stats[1] - hi).max() < 0.02 * (hi - lo).min()


def test_saturated_spot_and_hot_pixels_keep_the_nuclei(fluo):
    seg, image, n_clean = fluo
    rng = np.random.default_rng(2)
    spot = image.data.copy()
    spot[:, 200:220, 300:320] = 255  # 20 × 20 px, 0.11 % of the image (used to leave 4 of ~126 nuclei)
    hot = image.data.copy()
    n = int(0.002 * spot[0].size)
    hot[:, rng.integers(0, 520, n), rng.integers(0, 696, n)] = 255  # used to leave 2
    for data in (spot, hot):
        n_bad = len(seg.segment(data, 0.5).tables["nuclei"])
        assert abs(n_bad - n_clean) <= 0.05 * n_clean + 2, (n_bad, n_clean)


def test_nan_padding_is_outside_the_image(fluo, tmp_path):
    seg, image, n_clean = fluo
    padded = np.full((1, 600, 800), np.nan, np.float32)
    padded[:, 80:, 104:] = image.data
    result = seg.segment(padded, 0.5)
    lab = result.labels["nuclei"]
    assert lab[:80].max() == 0 and lab[:, :104].max() == 0
    assert abs(len(result.tables["nuclei"]) - n_clean) <= 0.05 * n_clean + 2
    assert any("NaN" in note for note in result.notes)
    # the same through the command line, from a float TIFF
    path = tmp_path / "registered.tif"
    tifffile.imwrite(path, padded[0], resolution=(2.0, 2.0), resolutionunit="MICROMETER")
    assert main(["segment", str(path), "-o", str(tmp_path / "out"), "--pixel-size", "0.5", "--outputs", "labels"]) == 0
    assert tifffile.imread(tmp_path / "out" / "registered_nuclei.tif")[:80].max() == 0


def test_all_nan_image_is_refused(tmp_path, capsys):
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, np.full((64, 64), np.nan, np.float32))
    assert main(["segment", str(path), "-o", str(tmp_path / "out"), "--pixel-size", "0.5"]) != 0
    assert "no finite pixel" in capsys.readouterr().err


def test_blank_field_gives_zero_objects_and_succeeds(tmp_path, capsys):
    path = tmp_path / "blank.tif"
    tifffile.imwrite(path, np.full((128, 128), 7, np.uint16))
    assert main(["segment", str(path), "-o", str(tmp_path / "out"), "--pixel-size", "0.5",
                 "--outputs", "labels,csv"]) == 0
    out = capsys.readouterr().out
    assert "0 nuclei" in out and "blank field" in out
    assert tifffile.imread(tmp_path / "out" / "blank_nuclei.tif").max() == 0


def test_exported_pipeline_treats_nan_as_outside(tmp_path):
    from phenoseg.export.torchscript import export_torchscript
    from phenoseg.models.zoo import load_model

    m = torch.jit.load(str(export_torchscript(load_model("fluorescence_nuclei"), tmp_path / "m.pt")))
    image = read_image(EXAMPLE).data[:, :256, :256].astype(np.float32)
    x = np.full((1, 1, 300, 300), np.nan, np.float32)
    x[0, :, 44:, 44:] = image
    labels = m(torch.from_numpy(x))
    assert labels[0, 0, :44].max() == 0 and labels[0, 0, 44:, 44:].max() > 0


def test_flat_background_does_not_fence_off_bright_cells():
    """A sparse bright marker on a small patch of tissue in a large flat background (a slide thumbnail that is
    mostly glass): its high percentile is the tissue's own, not clipped by fences the background set."""
    rng = np.random.default_rng(0)
    tissue = rng.poisson(30, (1, 256, 256)).astype(np.float32) + 12
    spots = rng.random((256, 256)) < 0.02
    tissue[0][spots] += rng.uniform(2000, 4000, int(spots.sum()))
    glass = np.full((1, 1280, 1280), 12, np.float32)
    glass[:, :256, :256] = tissue
    own, slide = normalisation_stats(tissue), normalisation_stats(glass)
    assert own[1, 0] > 1000  # the tissue alone: the bright cells set the top
    assert abs(slide[1, 0] - own[1, 0]) < 0.1 * own[1, 0]
