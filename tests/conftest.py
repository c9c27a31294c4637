"""Shared fixtures: synthetic datasets in the manifest layout and a small model folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import build_instanseg
from phenoseg.models.zoo import save_model
from phenoseg.synthetic import render_image, synthetic_labels

torch.set_num_threads(2)


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory):
    """ONNX exports cached in a folder of the test session, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PHENOSEG_CACHE", str(tmp_path_factory.mktemp("phenoseg_cache")))
    yield
    mp.undo()


def make_dataset(root: Path, n_train: int = 4, n_val: int = 2, size: int = 128, pixel_size: float | None = 0.5) -> Path:
    """A tiny RGB nucleus dataset in the shared manifest layout."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    split, images = {}, {}
    from PIL import Image as PILImage

    for i in range(n_train + n_val):
        image_id = f"img{i:02d}"
        lab = synthetic_labels((size, size), 25, seed=i, radius=(4, 8))
        img = render_image(lab, "brightfield", seed=i)
        PILImage.fromarray(np.moveaxis(img, 0, -1)).save(root / "images" / f"{image_id}.png")
        tifffile.imwrite(root / "labels" / f"{image_id}.tif", lab.astype(np.uint16))
        split[image_id] = "train" if i < n_train else "val"
        images[image_id] = {"shape": [size, size]}
    manifest = {"name": root.name, "pixel_size_um": pixel_size, "split": split, "images": images}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "synth")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A randomly initialised but complete RGB model folder."""
    torch.manual_seed(0)
    cfg = ModelConfig(name="tiny", widths=[8, 16])
    net = build_instanseg(cfg)
    with torch.no_grad():  # make seeds appear so postprocessing has work to do
        net.heads[0].bias[0] = 0.0
    return save_model(net, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture()
def rgb_tiff(tmp_path) -> Path:
    """An RGB TIFF with a 0.5 µm/px resolution tag and known nuclei."""
    lab = synthetic_labels((96, 96), 12, seed=3, radius=(4, 7))
    img = np.moveaxis(render_image(lab, "brightfield", seed=3), 0, -1)
    path = tmp_path / "he.tif"
    tifffile.imwrite(path, img, photometric="rgb", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    return path


def example_rgb() -> Path:
    """The bundled CC0 H&E example (a real image: the random test model finds objects in it)."""
    return Path(__file__).resolve().parents[1] / "examples" / "he_dsb2018.tif"
