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
