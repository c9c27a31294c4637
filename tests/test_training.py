"""Training: losses behave, a short run lowers the loss, resume and determinism."""

import json

import numpy as np
import pytest
import torch

from phenoseg.errors import PhenosegError
from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import InstanSegNet, split_target
from phenoseg.models.zoo import load_model
from phenoseg.postprocess.membership import relative_grid
from phenoseg.synthetic import synthetic_labels
from phenoseg.training.augment import CropSampler
from phenoseg.training.dataset import load_split
from phenoseg.training.losses import instanseg_loss, lovasz_hinge
from phenoseg.training.targets import seed_target
from phenoseg.training.trainer import TrainOptions, train


def test_seed_target_peaks_at_one_per_object():
    lab = synthetic_labels((96, 96), 15, seed=1)
    t = seed_target(lab)
    assert t[lab == 0].max() == 0
    for k in range(1, lab.max() + 1):
        assert t[lab == k].max() == pytest.approx(1.0)


def test_lovasz_hinge_properties():
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    valid = torch.ones_like(target)
    good = lovasz_hinge(torch.tensor([[5.0, 5.0, -5.0, -5.0]]), target, valid)
    bad = lovasz_hinge(torch.tensor([[-5.0, -5.0, 5.0, 5.0]]), target, valid)
    assert float(good) == 0.0 and float(bad) > 1.0
    # ignored pixels change nothing
    t2 = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0]])
    v2 = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    mixed = lovasz_hinge(torch.tensor([[2.0, -1.0, 0.5, -3.0, -9.0]]), t2, v2)
    ref = lovasz_hinge(torch.tensor([[2.0, -1.0, 0.5, -3.0]]), target, valid)
    assert float(mixed) == pytest.approx(float(ref))


def test_dataset_needs_pixel_size(tmp_path):
    from conftest import make_dataset

    root = make_dataset(tmp_path / "nopx", 1, 1, pixel_size=None)
    with pytest.raises(PhenosegError, match="--data-pixel-size"):
        load_split(root, "train", 0.5, 3)
    assert len(load_split(root, "train", 0.5, 3, data_pixel_size=0.5)) == 1


def test_loss_decreases_on_fixed_batch(dataset_dir):
    torch.manual_seed(0)
    samples = load_split(dataset_dir, "train", 0.5, 3)
    sampler = CropSampler(samples, 64, True, False, np.random.default_rng(0))
    imgs, labs, seeds = sampler.batch(4)
    cfg = ModelConfig(widths=[8, 16, 32])
    net = InstanSegNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    grid = relative_grid(32, cfg.dim_positional, cfg.coord_scale, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x, lab, sd = torch.from_numpy(imgs), torch.from_numpy(labs).long(), torch.from_numpy(seeds)
    losses = []
    for step in range(60):
        s, o, e = split_target(net(x), 0, cfg.dim_positional, cfg.dim_conditional, cfg.offset_range)
        ls, li = instanseg_loss(s, o, e, lab, sd, net.mlps[0], grid, 16, step < 10, gen)
        loss = ls + 1.5 * li
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[10:15])


def test_train_resume_and_determinism(tmp_path, dataset_dir):
    common = dict(data=[str(dataset_dir)], crop=64, batch=2, widths=[8, 16], window=32, val_minutes=100,
                  quiet=True, warm_steps=2, seed=3)
    a = train(TrainOptions(out=str(tmp_path / "a"), max_steps=6, **common))
    train(TrainOptions(out=str(tmp_path / "b"), max_steps=6, **common))
    wa, wb = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    for (k, va), vb in zip(wa.state_dict().items(), wb.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a["steps"] == 6
    c = train(TrainOptions(out=str(tmp_path / "a"), max_steps=9, resume=True, **common))
    assert c["steps"] == 9
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["training"]["steps"] == 9 and "val_model_resolution" in cfg["metrics"]
    with pytest.raises(PhenosegError, match="no checkpoint"):
        train(TrainOptions(out=str(tmp_path / "none"), max_steps=1, resume=True, **common))


def test_cli_train(tmp_path, dataset_dir, capsys):
    from phenoseg.cli import main

    code = main(["train", "--data", str(dataset_dir), "--out", str(tmp_path / "m"), "--steps", "3", "--crop", "64",
                 "--batch", "2", "--widths", "8,16", "--quiet"])
    assert code == 0
    assert (tmp_path / "m" / "weights.safetensors").is_file()
    assert main(["train", "--data", str(dataset_dir), "--out", str(tmp_path / "m2")]) == 2


def test_init_from_model_fine_tunes(tmp_path, dataset_dir, model_dir):
    out = tmp_path / "ft"
    train(TrainOptions(data=[str(dataset_dir)], out=str(out), max_steps=0, crop=64, batch=2, quiet=True,
                       init=str(model_dir), val_minutes=100))
    base, tuned = load_model(model_dir), load_model(out)
    assert tuned.config.widths == base.config.widths
    # zero steps: the saved weights are the initial ones
    for (k, a), b in zip(base.state_dict().items(), tuned.state_dict().values()):
        assert torch.equal(a, b), k
