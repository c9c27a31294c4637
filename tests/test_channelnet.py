"""ChannelNet (any number and order of channels), the synthetic multiplexed generator and nucleus ↔ cell
matching in the decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phenoseg.models.channelnet import ChannelNet
from phenoseg.models.config import ModelConfig, PostprocessConfig
from phenoseg.models.instanseg import build_instanseg
from phenoseg.phenotype.compartments import assign_nuclei_to_cells
from phenoseg.postprocess.pairing import cell_of_nucleus, contain_nuclei, pair_labels
from phenoseg.synthetic.cells import nuclei_and_cells
from phenoseg.synthetic.multiplex import MultiplexSettings, render_multiplex
from phenoseg.synthetic.nuclei import synthetic_labels
from phenoseg.training.multiplex import MultiplexSampler, pad_channels


def test_channelnet_permutation_invariant_and_padding_ignored():
    torch.manual_seed(0)
    net = ChannelNet().eval()
    x = torch.rand(2, 5, 32, 48)
    y = net(x)
    assert y.shape == (2, 3, 32, 48)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(net(x[:, perm]), y, atol=1e-5)
    padded = torch.cat([x, torch.full((2, 3, 32, 48), float("nan"))], 1)
    assert torch.allclose(net(padded), y, atol=1e-5)
    # a batch mixing channel counts (the second image has 2 channels, padded) equals running them apart
    mixed = x.clone()
    mixed[1, 2:] = float("nan")
    out = net(mixed)
    assert torch.allclose(out[0], y[0], atol=1e-5)
    assert torch.allclose(out[1], net(x[1:2, :2])[0], atol=1e-5)
    assert not torch.allclose(out[1], y[1], atol=1e-3)  # the channels taken away did matter
    scripted = torch.jit.script(net)
    assert torch.allclose(scripted(x), y, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2, 7, 40])
def test_channelnet_model_any_channel_count(channels):
    cfg = ModelConfig(in_channels=1, channel_names=["any"], modality="fluorescence", targets=["nuclei", "cells"],
                      decoder_groups=[["nuclei"], ["cells"]], adaptor={"kind": "channelnet"}, widths=[8, 16])
    net = build_instanseg(cfg).eval()
    assert cfg.accepts(channels)
    with torch.no_grad():
        out = net(torch.rand(1, channels, 32, 32))
    assert out.shape == (1, 2 * cfg.head_channels, 32, 32)


def _matched(nuclei: np.ndarray, cells: np.ndarray) -> None:
    """The matched-labels contract: a nucleus has its cell's id and lies inside it; ≤ 1 nucleus per cell."""
    inside = nuclei > 0
    assert (cells[inside] == nuclei[inside]).all()
    assert set(np.unique(cells[cells > 0])) == set(range(1, int(cells.max(initial=0)) + 1))


def test_pair_labels_contract_and_rule():
    rng = np.random.default_rng(0)
    for seed in range(12):
        nuc, cel = nuclei_and_cells((96, 96), 15, seed)
        nuc = np.roll(nuc, int(rng.integers(-3, 4)), axis=1)  # nuclei partly outside their cells
        cel = cel.copy()
        cel[cel == 3] = 0  # a nucleus without a cell
        cel[cel == 5] = 4  # a cell with two nuclei
        nt, ct = torch.from_numpy(nuc.astype(np.int32)), torch.from_numpy(cel.astype(np.int32))
        ns, cs = torch.rand(int(nuc.max())), torch.rand(int(cel.max()))
        n2, c2, ns2, cs2 = (t.numpy() for t in pair_labels(nt, ct, ns, cs))
        _matched(n2, c2)
        assert (n2 > 0).sum() == (nuc > 0).sum()  # every nucleus kept
        assert len(cs2) == c2.max() == len(ns2)
        for k in np.unique(n2[n2 > 0]):  # one input nucleus per cell
            assert len(np.unique(nuc[n2 == k])) == 1
        # the same rule as the numpy pairing used for labels users bring (measure)
        _, _, cell_of = assign_nuclei_to_cells(nuc, cel)
        torch_of = cell_of_nucleus(nt, ct).numpy()
        assert (cell_of[torch_of > 0] == torch_of[torch_of > 0]).all()
    # the nucleus left without its cell (3) became a cell of its own, with its score
    assert (c2 > 0).sum() >= (cel > 0).sum()


def test_contain_nuclei_drops_orphans_and_fills_cells():
    nuc = torch.tensor([[1, 1, 0, 2], [0, 0, 0, 2]])
    cel = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 0]])
    n2, c2 = contain_nuclei(nuc, cel)
    assert n2.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]  # nucleus 2's cell is gone
    assert c2.tolist() == [[1, 1, 1, 0], [0, 1, 1, 0]]


def test_scripted_decoder_matches_nuclei_and_cells():
    from phenoseg.inference.runner import build_decoder

    cfg = ModelConfig(in_channels=1, channel_names=["any"], targets=["nuclei", "cells"], widths=[8, 16],
                      adaptor={"kind": "channelnet"}, postprocess=PostprocessConfig(seed_threshold=0.05))
    net = build_instanseg(cfg).eval()
    dec = build_decoder(net)
    assert dec.pair == [0, 1]
    scripted = torch.jit.script(dec)
    raw = torch.randn(1, 2 * cfg.head_channels, 64, 64)
    lab, scores = scripted.decode(raw)
    lab = lab[0].numpy()
    assert lab[1].max() > 0
    _matched(lab[0], lab[1])
    assert len(scores[0][1]) == lab[1].max()


def test_generator_truth_and_channels():
    nuclei = synthetic_labels((128, 128), 30, seed=1, radius=(4, 7))
    a = render_multiplex(nuclei, np.random.default_rng(5), n_channels=9)
    b = render_multiplex(nuclei, np.random.default_rng(5), n_channels=9)
    assert np.array_equal(a.image, b.image)  # deterministic from its generator
    assert a.image.shape == (9, 128, 128) and a.image.dtype == np.float32 and (a.image >= 0).all()
    assert "nuclear" in a.kinds and len(a.kinds) == 9
    inside = a.nuclei > 0
    assert (a.cells[inside] == a.nuclei[inside]).all()  # nucleus i lies in cell i
    assert (a.cells > 0).sum() > 1.3 * inside.sum()  # cells reach beyond their nuclei
    # the nuclear channel is brighter on nuclei than off them
    nuc = a.image[a.kinds.index("nuclear")]
    assert nuc[inside].mean() > 2 * nuc[~(a.cells > 0)].mean()
    wide = render_multiplex(nuclei, np.random.default_rng(6), MultiplexSettings(channels=(20, 30)))
    assert 20 <= wide.image.shape[0] <= 30


def test_sampler_pads_real_images_and_marks_cells_unannotated():
    from phenoseg.training.instanseg.data import Sample, seed_targets

    maps = [synthetic_labels((160, 160), 40, seed=s, radius=(4, 7)) for s in range(2)]
    lab = synthetic_labels((96, 96), 10, seed=9)[None].astype(np.int32)
    real = [Sample("real", "r0", np.random.default_rng(0).random((1, 96, 96), np.float32), lab, seed_targets(lab))]
    sampler = MultiplexSampler(maps, real, 64, np.random.default_rng(0), MultiplexSettings(channels=(3, 3)),
                               real_fraction=0.5)
    imgs, labs, seeds = sampler.batch(8)
    assert imgs.shape[:2] == (8, 3) and labs.shape == (8, 2, 64, 64) and seeds.shape == labs.shape
    real_rows = [i for i in range(8) if (labs[i, 1] == -1).all()]
    assert real_rows, "no real sample drawn"
    for i in real_rows:  # real one-channel crops are padded with absent (NaN) channels
        assert np.isnan(imgs[i, -1]).all() and not np.isnan(imgs[i, 0]).any()
    assert pad_channels(np.zeros((2, 4, 4), np.float32), 2).shape == (2, 4, 4)


def _multiplex_tiff(path, image: np.ndarray, names: list[str]) -> None:
    import tifffile

    tifffile.imwrite(path, image.astype(np.uint16), metadata={"axes": "CYX", "Channel": {"Name": names}},
                     photometric="minisblack",
                     resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")


def test_cli_multiplex_any_order_gives_the_same_cells(tmp_path, capsys):
    """A 5-channel OME-TIFF goes to the bundled ChannelNet model on its own; the same image with its channels
    in another order gives exactly the same nuclei and cells, and the same measurements per channel name."""
    import csv

    import tifffile

    from phenoseg.cli import main

    nuclei = synthetic_labels((160, 160), 40, seed=3, radius=(4, 7))
    s = render_multiplex(nuclei, np.random.default_rng(3), n_channels=5)
    names = [f"{k}_{i}" if k != "nuclear" else "DAPI" for i, k in enumerate(s.kinds)]
    order = [3, 0, 4, 1, 2]
    _multiplex_tiff(tmp_path / "a.tif", s.image, names)
    _multiplex_tiff(tmp_path / "b.tif", s.image[order], [names[i] for i in order])
    assert main(["segment", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(tmp_path / "out"),
                 "--outputs", "labels,csv,geojson"]) == 0
    said = capsys.readouterr()
    assert "model 'fluorescence_nuclei_and_cells'" in said.out + said.err
    out = tmp_path / "out"
    for target in ("nuclei", "cells"):
        a, b = tifffile.imread(out / f"a_{target}.tif"), tifffile.imread(out / f"b_{target}.tif")
        assert a.max() > 10, target
        assert np.array_equal(a, b), target
    _matched(tifffile.imread(out / "a_nuclei.tif"), tifffile.imread(out / "a_cells.tif"))

    def rows(p):
        with open(p) as f:
            return list(csv.DictReader(f))

    ra, rb = rows(out / "a_measurements.csv"), rows(out / "b_measurements.csv")
    assert len(ra) == len(rb) == tifffile.imread(out / "a_cells.tif").max()
    key = next(k for k in ra[0] if k.startswith("DAPI"))  # a per-channel column, by its channel name
    assert [r[key] for r in ra] == [r[key] for r in rb]
    import json

    features = json.loads((out / "a.geojson").read_text())["features"]
    assert all(f["properties"]["objectType"] == "cell" for f in features)
    with_nucleus = len(np.unique(tifffile.imread(out / "a_nuclei.tif"))) - 1
    assert sum("nucleusGeometry" in f for f in features) == with_nucleus > 0.5 * len(features)


def test_train_channelnet_on_panels_of_different_sizes(tmp_path, capsys):
    """`phenoseg train --channelnet` takes a dataset whose images have 2, 3 and 5 channels (nuclei + cells),
    and the model it writes segments an image with yet another channel count."""
    import json

    import tifffile

    from phenoseg.cli import main
    from phenoseg.models.zoo import load_model

    root = tmp_path / "panels"
    for d in ("images", "labels_nuclei", "labels_cells"):
        (root / d).mkdir(parents=True)
    split = {}
    for i, count in enumerate([2, 3, 5, 2, 3]):
        nuclei = synthetic_labels((96, 96), 14, seed=i, radius=(4, 7))
        s = render_multiplex(nuclei, np.random.default_rng(i), n_channels=count)
        tifffile.imwrite(root / "images" / f"im{i}.tif", s.image.astype(np.uint16), metadata={"axes": "CYX"},
                         photometric="minisblack")
        tifffile.imwrite(root / "labels_nuclei" / f"im{i}.tif", s.nuclei.astype(np.uint16))
        tifffile.imwrite(root / "labels_cells" / f"im{i}.tif", s.cells.astype(np.uint16))
        split[f"im{i}"] = "val" if i == 4 else "train"
    (root / "manifest.json").write_text(json.dumps({"name": "panels", "pixel_size_um": 0.5, "split": split}))
    out = tmp_path / "model"
    assert main(["train", "--data", str(root), "--out", str(out), "--steps", "6", "--crop", "64", "--batch", "3",
                 "--widths", "8,16", "--window", "32", "--modality", "fluorescence", "--channelnet", "--no-tune",
                 "--separate-decoders", "--val-minutes", "100", "--quiet"]) == 0
    net = load_model(out)
    assert net.config.adaptor == {"kind": "channelnet"} and net.config.targets == ["nuclei", "cells"]
    assert net.config.training["images"]["train"] == 4  # every channel count was loaded
    with torch.no_grad():
        assert net(torch.rand(1, 7, 32, 32)).shape[1] == 2 * net.config.head_channels
    # a ChannelNet adaptor cannot be put on a model trained without one
    code = main(["train", "--data", str(root), "--out", str(tmp_path / "m2"), "--steps", "1", "--channelnet",
                 "--init", "fluorescence_nuclei", "--quiet"])
    assert code != 0 and "ChannelNet" in capsys.readouterr().err


def test_whole_slide_multiplex_matches_in_memory(tmp_path):
    """A 6-channel OME-TIFF through the whole-slide path (tiles of 128 px, OME-Zarr + CSV): matched nuclei and
    cells, the same objects as one untiled pass, every channel measured under its name."""
    import csv

    from phenoseg.cli import main
    from phenoseg.evaluation.matching import match_counts, summarise
    from phenoseg.inference.segmenter import Segmenter
    from phenoseg.io.omezarr import read_labels_level

    nuclei = synthetic_labels((320, 320), 110, seed=5, radius=(4, 7))
    s = render_multiplex(nuclei, np.random.default_rng(5), n_channels=6)
    names = ["DAPI" if k == "nuclear" else f"{k}_{i}" for i, k in enumerate(s.kinds)]
    _multiplex_tiff(tmp_path / "panel.tif", s.image, names)
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "panel.tif"), "-o", str(out), "--outputs", "zarr,csv",
                 "--tile-size", "128", "--no-tissue-mask", "--quiet"]) == 0
    zarr_path = out / "panel.ome.zarr"
    slide = {t: read_labels_level(zarr_path, t) for t in ("nuclei", "cells")}
    _matched(slide["nuclei"], slide["cells"])
    whole = Segmenter("fluorescence_nuclei_and_cells", device="cpu").segment(str(tmp_path / "panel.tif"))
    for target, labels in slide.items():
        assert labels.max() > 40, target
        assert summarise(match_counts(whole.labels[target], labels))["f1@0.5"] >= 0.95, target
    with open(out / "panel_cells_measurements.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == slide["cells"].max()
    for name in names:
        assert any(k.startswith(name) for k in rows[0]), name


def test_onnx_backend_matches_torch_for_any_channel_count():
    """The ONNX Runtime backend (the CPU default when onnxruntime is installed) computes what torch computes
    for ChannelNet at 1 to 40 channels and with an absent (all-NaN) channel."""
    from phenoseg.inference.onnx_backend import OnnxNetwork
    from phenoseg.models.zoo import load_model

    net = load_model("fluorescence_nuclei_and_cells").eval()
    fast = OnnxNetwork(net)
    torch.manual_seed(0)
    inputs = [torch.rand(1, c, 64, 64) for c in (1, 3, 7, 40)]
    inputs.append(torch.rand(1, 4, 64, 64))
    inputs[-1][0, 2] = float("nan")
    for x in inputs:
        with torch.inference_mode():
            want = net(x)
        assert torch.allclose(fast(x), want, atol=1e-3), x.shape
    from phenoseg.inference.segmenter import Segmenter

    auto = Segmenter("fluorescence_nuclei_and_cells", device="cpu", backend="auto")
    assert not isinstance(auto.runtime(net, 10**8), OnnxNetwork)  # auto: torch is the faster one here
    assert isinstance(Segmenter(device="cpu", backend="onnx").runtime(net, 10), OnnxNetwork)  # asked for: given
