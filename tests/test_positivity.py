"""Marker positivity: synthetic markers with exact truth, the MobileNet-ISAB's set properties, the pass's
columns, the metrics by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phenoseg.models.positivity import PositivityConfig, build_positivity
from phenoseg.synthetic.cells import nuclei_and_cells
from phenoseg.synthetic.markers import MarkerSettings, render_marker
from phenoseg.training.positivity import f1_score, focal_loss, roc_auc


@pytest.fixture(scope="module")
def cells():
    return nuclei_and_cells((160, 160), 30, seed=3)


def cell_means(img, lab):
    n = int(lab.max()) + 1
    return np.bincount(lab.ravel(), img.ravel(), n) / np.maximum(np.bincount(lab.ravel(), minlength=n), 1)


@pytest.mark.parametrize("pattern", ["nuclear", "cytoplasmic", "whole-cell", "membrane"])
def test_markers_have_exact_truth_and_their_pattern(cells, pattern):
    nuclei, cell = cells
    clean = MarkerSettings(negative_ratio=(0.0, 0.0), spread=(0.1, 0.1), background=(0.0, 0.0), spill=(0.0, 0.0),
                           psf_sigma=(0.0, 0.0), photons=(1e4, 1e4), read_noise=(0.0, 0.0), dropout=(0.0, 0.0),
                           morph=(0, 0), positive_fraction=(0.5, 0.5))
    img, positive, params = render_marker(cell, nuclei, torch.Generator().manual_seed(1), clean, pattern)
    assert params["pattern"] == pattern and positive.shape == (cell.max() + 1,) and not positive[0]
    ids = np.unique(cell)[1:]
    means = cell_means(img, cell)[ids]
    # without noise or overlap the populations separate completely
    assert means[positive[ids]].min() > 0.05 > means[~positive[ids]].max()
    on = img > 0.05
    if pattern == "nuclear":
        assert (on <= (nuclei > 0)).all()
    if pattern == "cytoplasmic":
        assert not (on & (nuclei > 0)).any()
    if pattern == "membrane":  # the band along each outline, not the middle
        from scipy import ndimage as ndi
        from skimage.segmentation import find_boundaries

        deep = (ndi.distance_transform_edt(~find_boundaries(cell, mode="inner")) > 4) & (cell > 0)
        assert (on & deep).sum() < 0.05 * on.sum()


def test_regimes_overlap_and_held_out_lies_outside():
    s = MarkerSettings()
    h, o = s.held_out(), s.overlapping()
    assert h.photons[1] <= s.photons[0] and h.psf_sigma[0] >= s.psf_sigma[1] and h.spill[0] >= s.spill[1]
    assert h.negative_ratio == s.negative_ratio and h.spread == s.spread  # imaging held out, biology as trained
    assert o.negative_ratio[0] >= s.negative_ratio[1] and o.spread[0] >= s.spread[1] and o.photons == h.photons


def test_isab_is_permutation_equivariant_any_size_and_chunked_alike():
    torch.manual_seed(0)
    net = build_positivity(PositivityConfig(widths=[8, 12, 16], embed_dim=16, heads=4, inducing=4)).eval()
    e = torch.randn(37, 16)
    perm = torch.randperm(37)
    with torch.no_grad():
        out = net.set_logits(e)
        assert torch.allclose(net.set_logits(e[perm]), out[perm], atol=1e-5)
        assert net.set_logits(e[:1]).shape == (1,)
        # one cell's logit depends on the others (the set), unlike the per-cell ablation
        other = e.clone()
        other[1:] += 3.0
        assert not torch.allclose(net.set_logits(other)[0], out[0])
        x = e[None]
        assert torch.allclose(net.isab(x, chunk=5), net.isab(x), atol=1e-5)
        crops = torch.randn(5, 2, 64, 64)
        assert net(crops).shape == (5,) and net.embed(crops).shape == (5, 16)
    ablation = build_positivity(PositivityConfig(widths=[8, 12], embed_dim=16, isab=False)).eval()
    with torch.no_grad():
        one = ablation.set_logits(e)
        other = e.clone()
        other[1:] += 3.0
        assert torch.allclose(ablation.set_logits(other)[0], one[0])


def test_pass_adds_columns_and_composite_classes(cells, tmp_path):
    from phenoseg.models.zoo import load_model, save_model
    from phenoseg.phenotype.positivity import PositivityPass, PositivityPredictor, composite_class
    from phenoseg.phenotype.table import PassContext, object_table

    nuclei, cell = cells
    gen = torch.Generator().manual_seed(2)
    markers = [render_marker(cell, nuclei, gen)[0] for _ in range(2)]
    image = np.stack([nuclei > 0, *markers]).astype(np.float32)
    net = build_positivity(PositivityConfig(widths=[8, 12, 16], embed_dim=16, inducing=4))
    save_model(net, tmp_path / "m")
    pred = PositivityPredictor(load_model(tmp_path / "m"))
    table = object_table(cell, "cells", None)
    PositivityPass(pred, channels=[1, 2])(table, PassContext(image, {"cells": cell, "nuclei": nuclei}, 0.5,
                                                             ["DAPI", "CD3", "CD8"]))
    p = table.columns["CD3_positive_probability"]
    assert p.shape == (len(table),) and ((p >= 0) & (p <= 1)).all()
    assert set(np.unique(table.columns["CD8_positive"])) <= {0, 1}
    assert "DAPI_positive" not in table.columns
    assert all(c.startswith("CD3") and ": CD8" in c for c in table.columns["class"])
    assert list(composite_class(np.array([[1, 0], [0, 1]]), ["CD3", "CD8"])) == ["CD3+: CD8-", "CD3-: CD8+"]


def test_metrics_by_hand():
    # 2 positives (0.9, 0.4), 3 negatives (0.5, 0.2, 0.1): 5 of the 6 pairs ordered right → AUC 5/6
    assert roc_auc(np.array([0.9, 0.4, 0.5, 0.2, 0.1]), np.array([1, 1, 0, 0, 0], bool)) == pytest.approx(5 / 6)
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0], bool)) == pytest.approx(0.5)  # a tie counts half
    assert f1_score(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)) == pytest.approx(0.5)
    confident = focal_loss(torch.tensor([6.0, -6.0]), torch.tensor([1.0, 0.0]))
    unsure = focal_loss(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert confident < 1e-4 < unsure


def test_train_positivity_command_runs_and_writes_a_model(tmp_path, dataset_dir):
    from phenoseg.cli.main import main
    from phenoseg.models.zoo import load_model

    data = dataset_dir
    rc = main(["train-positivity", "--data", str(data), "--out", str(tmp_path / "m"), "--steps", "2",
               "--val-minutes", "100", "--quiet"])
    assert rc == 0
    net = load_model(tmp_path / "m")
    assert net.config.kind == "positivity" and "f1" in net.config.metrics["val_synthetic"]
    assert main(["train-positivity", "--data", str(data), "--out", str(tmp_path / "m2")]) == 2  # no budget
