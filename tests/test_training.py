"""Training: losses behave, a short run lowers the loss, resume and determinism."""

import json

import numpy as np
import pytest
import torch

from phenoseg.errors import PhenosegError
from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import InstanSegNet, build_instanseg, split_target
from phenoseg.models.zoo import load_model
from phenoseg.postprocess.membership import relative_grid
from phenoseg.synthetic import synthetic_labels
from phenoseg.training.instanseg.augment import CropSampler, rescaled_crop
from phenoseg.training.instanseg.data import Sample, load_split
from phenoseg.training.instanseg.losses import instanseg_loss, lovasz_hinge
from phenoseg.training.instanseg.targets import seed_target
from phenoseg.training.instanseg.train import TrainOptions, train


def test_seed_target_peaks_at_one_per_object():
    lab = synthetic_labels((96, 96), 15, seed=1)
    t = seed_target(lab)
    assert t[lab == 0].max() == 0
    for k in range(1, lab.max() + 1):
        assert t[lab == k].max() == pytest.approx(1.0)


@pytest.mark.parametrize("zoom", [0.8, 1.25])
def test_rescaled_crop_keeps_image_labels_and_seeds_aligned(zoom):
    lab = synthetic_labels((200, 200), 60, seed=2, radius=(3.0, 7.0))
    lab[:10] = -1  # an unannotated band must stay unannotated
    image = np.stack([(lab > 0).astype(np.float32), np.zeros_like(lab, np.float32)])
    sample = Sample("s", "i", image, lab, seed_target(lab))
    img, out, seed = rescaled_crop(sample, 96, zoom, np.random.default_rng(0))
    assert img.shape == (2, 96, 96) and out.shape == seed.shape == (96, 96)
    inside = out > 0
    # the image was resampled with the labels: foreground pixels are bright, background dark
    assert img[0][inside].mean() > 0.9 and img[0][out == 0].mean() < 0.1
    assert (seed[out <= 0] == 0).all() and seed[inside].min() > 0
    # objects grow with the zoom: mean object area scales by about zoom²
    kept, areas = np.unique(out[inside], return_counts=True)
    full = np.bincount(lab[lab > 0])[kept]
    whole = areas > 0.9 * zoom**2 * full  # objects not cut by the crop border
    assert whole.sum() >= 3
    assert np.median(areas[whole] / full[whole]) == pytest.approx(zoom**2, rel=0.15)


def test_crop_sampler_scale_jitter_changes_object_sizes(dataset_dir):
    samples = load_split(dataset_dir, "train", 0.5, 3)
    plain = CropSampler(samples, 64, True, False, np.random.default_rng(0)).batch(6)
    jitter = CropSampler(samples, 64, True, False, np.random.default_rng(0), scale_jitter=0.5).batch(6)
    assert jitter[0].shape == plain[0].shape and jitter[1].shape == plain[1].shape
    assert not np.array_equal(jitter[1], plain[1])


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
    with pytest.raises(PhenosegError, match="data_pixel_size="):
        load_split(root, "train", 0.5, 3)
    assert len(load_split(root, "train", 0.5, 3, data_pixel_size=0.5)) == 1


def test_loss_decreases_on_fixed_batch(dataset_dir):
    torch.manual_seed(0)
    samples = load_split(dataset_dir, "train", 0.5, 3)
    sampler = CropSampler(samples, 64, True, False, np.random.default_rng(0))
    imgs, labs, seeds = sampler.batch(4)
    cfg = ModelConfig(widths=[8, 16, 32])
    net = build_instanseg(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    grid = relative_grid(32, cfg.dim_positional, cfg.coord_scale, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x, lab, sd = torch.from_numpy(imgs), torch.from_numpy(labs[:, 0]).long(), torch.from_numpy(seeds[:, 0])
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
                 "--batch", "2", "--widths", "8,16", "--scale-jitter", "0.25", "--quiet"])
    assert code == 0
    assert (tmp_path / "m" / "weights.safetensors").is_file()
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["training"]["options"]["scale_jitter"] == 0.25
    assert main(["train", "--data", str(dataset_dir), "--out", str(tmp_path / "m2")]) == 2
    assert main(["train", "--data", str(dataset_dir), "--out", str(tmp_path / "m3"), "--steps", "1",
                 "--scale-jitter", "1.5"]) == 2
    assert "--scale-jitter" in capsys.readouterr().err
    assert not (tmp_path / "m3").exists()


def test_init_from_model_fine_tunes(tmp_path, dataset_dir, model_dir):
    out = tmp_path / "ft"
    train(TrainOptions(data=[str(dataset_dir)], out=str(out), max_steps=0, crop=64, batch=2, quiet=True,
                       init=str(model_dir), val_minutes=100))
    base, tuned = load_model(model_dir), load_model(out)
    assert tuned.config.widths == base.config.widths
    # zero steps: the saved weights are the initial ones
    for (k, a), b in zip(base.state_dict().items(), tuned.state_dict().values()):
        assert torch.equal(a, b), k


def _trained_like(widths: list[int]) -> InstanSegNet:
    """A small network whose batch-norm statistics are not the defaults (as after training)."""
    torch.manual_seed(3)
    net = build_instanseg(ModelConfig(name="small", widths=widths))
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(2, 3, 64, 64))
    return net.eval()


@pytest.mark.parametrize("widths,blocks", [([8, 16, 32], 1), ([8, 16], 2), ([8, 16, 32], 2)])
def test_grow_starts_as_the_trained_network(widths, blocks):
    from phenoseg.training.grow import grow_network

    base = _trained_like([8, 16])
    grown = grow_network(base, build_instanseg(ModelConfig(name="g", widths=widths, blocks_per_level=blocks))).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = base(x), grown(x)
    assert a.shape == b.shape
    assert float((a - b).abs().max()) < 1e-2 * float(a.abs().max())
    # a randomly initialised network of the same shape is far from it
    with torch.no_grad():
        other = build_instanseg(ModelConfig(name="r", widths=widths, blocks_per_level=blocks)).eval()(x)
    assert float((a - other).abs().max()) > 0.1 * float(a.abs().max())
    # the added parts learn: after one optimiser step the output moves
    opt = torch.optim.SGD(grown.parameters(), lr=0.1)
    grown.train()
    loss = grown(x).pow(2).mean()
    loss.backward()
    extra = len(widths) - 2
    # the last batch-norm scales of added blocks at the trained levels (a new deepest level learns once its
    # zero projection has)
    new_scales = [blk.body[1][1].weight for stage in grown.encoder.stages[:2] for blk in list(stage)[1:]]
    new_scales += [blk.body[1][1].weight for dec in grown.decoders for j, st in enumerate(dec.stages)
                   if j >= extra for blk in list(st.stage)[1:]]
    new_scales += [dec.stages[0].project.weight for dec in grown.decoders if extra]
    assert new_scales and all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in new_scales)
    opt.step()


def test_grow_refuses_incompatible_widths():
    from phenoseg.training.grow import grow_network

    base = _trained_like([8, 16])
    with pytest.raises(PhenosegError, match="must start with"):
        grow_network(base, build_instanseg(ModelConfig(name="g", widths=[16, 32, 64])))


def test_cli_grow_from_model(tmp_path, dataset_dir, model_dir):
    from phenoseg.cli import main

    out = tmp_path / "grown"
    code = main(["train", "--data", str(dataset_dir), "--out", str(out), "--steps", "2", "--crop", "64",
                 "--batch", "2", "--init", str(model_dir), "--grow", "--widths", "8,16,32", "--quiet", "--no-tune"])
    assert code == 0
    grown = load_model(out)
    assert grown.config.widths == [8, 16, 32] and grown.stride == 4
    assert main(["train", "--data", str(dataset_dir), "--out", str(tmp_path / "g2"), "--steps", "1",
                 "--grow", "--widths", "8,16,32"]) == 2


def test_train_refuses_to_replace_a_model(tmp_path, dataset_dir, capsys):
    from phenoseg.cli import main

    out = tmp_path / "m"
    common = ["train", "--data", str(dataset_dir), "--out", str(out), "--steps", "1", "--crop", "64", "--batch", "2",
              "--widths", "8,16", "--quiet", "--no-tune"]
    assert main(common) == 0
    before = (out / "weights.safetensors").read_bytes()
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err
    assert (out / "weights.safetensors").read_bytes() == before  # nothing was touched
    assert main([*common, "--resume", "--overwrite"]) == 2
    assert main([*common, "--overwrite", "--seed", "5"]) == 0
    assert (out / "weights.safetensors").read_bytes() != before
