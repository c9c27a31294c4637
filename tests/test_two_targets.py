"""A two-target model (nuclei + cells) end to end: trained on synthetic two-channel images, then through
the in-memory path, tiling, a whole slide, TTA and the TorchScript export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from phenoseg.evaluation.matching import match_counts, summarise
from phenoseg.inference.segmenter import Segmenter
from phenoseg.models.zoo import load_model
from phenoseg.synthetic import nuclei_and_cells, render_two_channel

pytestmark = pytest.mark.slow
CHANNELS = ["DAPI", "membrane"]


def write_two_channel(path: Path, image: np.ndarray, pixel_size: float | None = 0.5) -> Path:
    kwargs = {"resolution": (1e4 / pixel_size, 1e4 / pixel_size), "resolutionunit": "CENTIMETER"} if pixel_size else {}
    tifffile.imwrite(path, image, metadata={"axes": "CYX", "Channel": {"Name": CHANNELS}}, **kwargs)
    return path


def assert_matched(nuclei: np.ndarray, cells: np.ndarray) -> None:
    """Every nucleus has its cell's id and lies inside it (so a cell has at most one nucleus)."""
    inside = nuclei > 0
    assert inside.any() and (cells[inside] == nuclei[inside]).all()


def make_two_target_dataset(root: Path, n_train: int = 6, n_val: int = 2, size: int = 128) -> Path:
    """Nuclei in labels_nuclei/, cells in labels_cells/; image 1 has no cell labels (its cell loss is skipped)."""
    for d in ("images", "labels_nuclei", "labels_cells"):
        (root / d).mkdir(parents=True)
    split = {}
    for i in range(n_train + n_val):
        nuc, cells = nuclei_and_cells((size, size), 24, seed=i)
        image_id = f"img{i:02d}"
        write_two_channel(root / "images" / f"{image_id}.tif", render_two_channel(nuc, cells, seed=i), None)
        tifffile.imwrite(root / "labels_nuclei" / f"{image_id}.tif", nuc.astype(np.uint16))
        if i != 1:
            tifffile.imwrite(root / "labels_cells" / f"{image_id}.tif", cells.astype(np.uint16))
        split[image_id] = "train" if i < n_train else "val"
    (root / "manifest.json").write_text(json.dumps({"name": root.name, "pixel_size_um": 0.5, "split": split}))
    return root


@pytest.fixture(scope="module")
def two_target(tmp_path_factory):
    """(model folder, dataset folder): 400 steps (~15 s on 2 CPU cores) through `phenoseg train`."""
    from phenoseg.cli import main

    base = tmp_path_factory.mktemp("two")
    data = make_two_target_dataset(base / "synth2")
    out = base / "model"
    code = main(["train", "--data", str(data), "--out", str(out), "--steps", "400", "--crop", "64", "--batch", "4",
                 "--widths", "8,16,32", "--window", "32", "--modality", "fluorescence", "--val-minutes", "100",
                 "--separate-decoders", "--quiet"])
    assert code == 0
    return out, data


def test_training_data_and_objective_per_target(two_target):
    from phenoseg.training.instanseg.data import load_split

    _, data = two_target
    samples = load_split(data, "train", 0.5, 2, targets=["nuclei", "cells"])
    assert len(samples) == 6 and samples[0].labels.shape == (2, 128, 128)
    missing = [s for s in samples if not s.has_target(1)]
    assert [s.image_id for s in missing] == ["img01"] and missing[0].has_target(0)
    assert (missing[0].seed[1] == 0).all()


def test_trained_model_predicts_both_targets(two_target):
    model, _ = two_target
    net = load_model(model)
    cfg = net.config
    assert cfg.targets == ["nuclei", "cells"] and cfg.target_groups() == [["nuclei"], ["cells"]]
    assert len(net.decoders) == 2 and len(net.mlps) == 2
    per = cfg.metrics["val_model_resolution"]
    assert set(per) == {"synth2/nuclei", "synth2/cells"}
    # a minute of CPU training on synthetic data: far from perfect, far from chance
    assert per["synth2/nuclei"]["f1@0.5"] > 0.5 and per["synth2/cells"]["f1@0.5"] > 0.3, per
    # each target has its own tuned postprocessing settings
    assert set(cfg.postprocess) == {"nuclei", "cells"}


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    nuc, cells = nuclei_and_cells((320, 288), 150, seed=40)
    path = write_two_channel(tmp_path_factory.mktemp("img") / "multi.tif", render_two_channel(nuc, cells, seed=40))
    return path, nuc, cells


def _f1(a: np.ndarray, b: np.ndarray) -> float:
    return summarise(match_counts(a.astype(np.int64), b.astype(np.int64)))["f1@0.5"]


def test_in_memory_and_tiled(two_target, big_image):
    model, _ = two_target
    path, nuc, cells = big_image
    seg = Segmenter(str(model), device="cpu")
    whole = seg.segment(path)
    assert set(whole.labels) == {"nuclei", "cells"} and set(whole.tables) == {"nuclei", "cells"}
    assert _f1(nuc, whole.labels["nuclei"]) > 0.5 and _f1(cells, whole.labels["cells"]) > 0.3
    for target in ("nuclei", "cells"):
        assert len(whole.tables[target]) == len(np.unique(whole.labels[target])) - 1
    calls = []
    tiled = seg.segment(path, tile_size=96, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] > 4
    for target in ("nuclei", "cells"):
        assert _f1(whole.labels[target], tiled.labels[target]) >= 0.99, target
    for result in (whole, tiled):  # matched in the decoder: a nucleus has its cell's id and lies inside it
        assert_matched(result.labels["nuclei"], result.labels["cells"])


def test_whole_slide_tta_and_outputs(two_target, big_image, tmp_path):
    from phenoseg.cli import main
    from phenoseg.io.omezarr import read_labels_level

    model, _ = two_target
    path, _, _ = big_image
    out = tmp_path / "out"
    # --outputs zarr asks for the whole-slide path; tiles of 96 px with --tta
    assert main(["segment", str(path), "-o", str(out), "--model", str(model), "--outputs", "zarr,geojson,csv",
                 "--tile-size", "96", "--tta", "--no-tissue-mask", "--quiet"]) == 0
    tta = Segmenter(str(model), device="cpu", tta=True).segment(path)
    for target in ("nuclei", "cells"):
        slide_labels = read_labels_level(out / "multi.ome.zarr", target)
        assert slide_labels.max() > 10
        assert _f1(tta.labels[target], slide_labels) >= 0.99, target
        rows = (out / f"multi_{target}_measurements.csv").read_text().splitlines()
        assert len(rows) - 1 == len(np.unique(slide_labels)) - 1
    zarr_path = out / "multi.ome.zarr"
    assert_matched(read_labels_level(zarr_path, "nuclei"), read_labels_level(zarr_path, "cells"))
    features = json.loads((out / "multi.geojson").read_text())["features"]
    names = {f["properties"]["name"].split()[0] for f in features}
    assert names == {"nuclei", "cells"}
    # the plain (non-TTA) result differs: the flag was honoured, not ignored
    plain = Segmenter(str(model), device="cpu").segment(path)
    assert any(not np.array_equal(plain.labels[t], tta.labels[t]) for t in ("nuclei", "cells"))


def test_torchscript_export_emits_both_targets(two_target, big_image, tmp_path):
    from phenoseg.export.torchscript import export_torchscript

    model, _ = two_target
    path, _, _ = big_image
    net = load_model(model)
    pt = export_torchscript(net, tmp_path / "two.pt")
    scripted = torch.jit.load(str(pt))
    image = tifffile.imread(path).astype(np.float32)
    out = scripted(torch.from_numpy(image)[None])[0].numpy()
    assert out.shape == (2, 320, 288)
    # the image is at the model's pixel size: the export and the Segmenter give the same labels
    result = Segmenter(net, device="cpu").segment(path)
    for i, target in enumerate(net.config.targets):
        assert _f1(result.labels[target], out[i]) >= 0.999, target
    assert_matched(out[net.config.targets.index("nuclei")], out[net.config.targets.index("cells")])


def test_bioimageio_package_of_two_targets(two_target, tmp_path, capsys):
    pytest.importorskip("bioimageio.spec")
    import yaml

    from phenoseg.cli import main

    model, _ = two_target
    out = tmp_path / "pkg"
    assert main(["export", "--model", str(model), "--format", "bioimageio", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validation: valid-format" in printed or "validation: passed" in printed
    rdf = yaml.safe_load((out / "rdf.yaml").read_text())
    channel_axis = rdf["outputs"][0]["axes"][1]
    assert channel_axis["channel_names"] == ["nuclei", "cells"]
    assert np.load(out / "test_output.npy").shape[1] == 2


def test_separate_decoders_cannot_apply_to_a_shared_decoder_model(tmp_path, dataset_dir, capsys):
    from phenoseg.cli import main
    from phenoseg.models.config import ModelConfig
    from phenoseg.models.instanseg import build_instanseg
    from phenoseg.models.zoo import save_model

    shared = save_model(build_instanseg(ModelConfig(name="shared", targets=["nuclei", "cells"], widths=[8, 16])),
                        tmp_path / "shared")
    code = main(["train", "--data", str(dataset_dir), "--out", str(tmp_path / "m"), "--steps", "1", "--init",
                 str(shared), "--separate-decoders", "--quiet"])
    assert code == 2 and "--separate-decoders" in capsys.readouterr().err
