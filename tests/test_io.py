"""Reading images: axes, pixel size from metadata, and bad files."""

import os

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from phenoseg.errors import PhenosegError
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels, write_labels


def test_rgb_tiff_with_resolution(rgb_tiff):
    img = read_image(rgb_tiff)
    assert img.data.shape == (3, 96, 96) and img.rgb
    assert img.pixel_size_um == pytest.approx(0.5)


def test_ome_tiff_pixel_size_and_channels(tmp_path):
    data = np.random.default_rng(0).integers(0, 4000, (2, 64, 80), dtype=np.uint16)
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(path, data, metadata={"axes": "CYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325,
                                           "Channel": {"Name": ["DAPI", "CD3"]}})
    img = read_image(path)
    assert img.data.shape == (2, 64, 80)
    assert img.pixel_size_um == pytest.approx(0.325)
    assert img.channel_names == ["DAPI", "CD3"]


def test_png_gray_and_rgba(tmp_path):
    g = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    PILImage.fromarray(g).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.data.shape == (1, 64, 64) and img.pixel_size_um is None
    rgba = np.dstack([g, g, g, np.full_like(g, 255)])
    PILImage.fromarray(rgba).save(tmp_path / "c.png")
    assert read_image(tmp_path / "c.png").data.shape == (3, 64, 64)


@pytest.mark.parametrize(
    "maker, message",
    [
        (lambda p: p.write_bytes(b"not an image at all"), "cannot read"),
        (lambda p: tifffile.imwrite(p, np.zeros((32, 32), np.complex64) + 1j), "unsupported pixel type"),
        (lambda p: tifffile.imwrite(p, np.full((32, 32), np.nan, np.float32)), "no finite pixel"),
        (lambda p: tifffile.imwrite(p, np.random.rand(3, 4, 32, 32).astype(np.float32), metadata={"axes": "ZCYX"}),
         "2D"),
        (lambda p: tifffile.imwrite(p, np.random.rand(4, 4).astype(np.float32)), "too small"),
    ],
)
def test_bad_images_raise_clear_errors(tmp_path, maker, message):
    path = tmp_path / "bad.tif"
    maker(path)
    with pytest.raises(PhenosegError, match=message):
        read_image(path)


def test_truncated_tiff(tmp_path, rgb_tiff):
    data = rgb_tiff.read_bytes()
    bad = tmp_path / "trunc.tif"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(PhenosegError):
        read_image(bad)


def test_labels_round_trip(tmp_path):
    lab = np.arange(100, dtype=np.uint32).reshape(10, 10)
    write_labels(tmp_path / "l.tif", lab, 0.5)
    back = read_labels(tmp_path / "l.tif")
    assert back.dtype == np.uint32 and np.array_equal(back, lab)
    assert not list(tmp_path.glob("*.tmp"))
    old = os.umask(0o022)
    try:
        write_labels(tmp_path / "m.tif", lab)
    finally:
        os.umask(old)
    assert (tmp_path / "m.tif").stat().st_mode & 0o777 == 0o644  # not the 0600 of a raw temp file


def test_inner_boundaries_are_skimage_inner_boundaries():
    from skimage.segmentation import find_boundaries

    from phenoseg.io.overlay import inner_boundaries

    rng = np.random.default_rng(5)
    for _ in range(20):
        lab = (rng.random((30, 40)) < 0.6) * rng.integers(1, 6, (30, 40))
        assert (inner_boundaries(lab) == find_boundaries(lab, mode="inner")).all()
    full = np.ones((8, 8), np.int32)  # an object filling the image has no boundary at the image's edge
    assert not inner_boundaries(full).any() and not find_boundaries(full, mode="inner").any()
