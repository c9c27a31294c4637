"""Training a ChannelNet nuclei + cells model (any number and order of channels) on synthetic multiplexed
crops grown from real nucleus label maps, mixed with real nucleus-only fluorescence images.

A run can start from a trained single-channel fluorescence nucleus model (``init``): its encoder, decoder,
heads and instance MLP seed both targets' parts (the encoder's first convolution spread over ChannelNet's 3
output channels), so the cell decoder starts from a good nucleus decoder. Runs are resumable like
`phenoseg train` (the same loop and objective).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from phenoseg.errors import PhenosegError
from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import InstanSegNet, build_instanseg
from phenoseg.models.zoo import load_model, save_model
from phenoseg.synthetic.multiplex import MultiplexSettings
from phenoseg.training.instanseg.data import load_split
from phenoseg.training.instanseg.objective import InstanSegObjective
from phenoseg.training.loop import LoopOptions, check_resumable, run_loop
from phenoseg.training.multiplex import MultiplexSampler, as_two_targets, nucleus_maps, validation_samples

TARGETS = ["nuclei", "cells"]
# the bundled model's data: CC0 only (DSB2018), so its weights carry no non-commercial clause. The histology
# tiles of dsb2018_brightfield give tissue layouts (taken as 0.25 µm/px); dsb2018_fluo real nuclei (0.5 µm/px)
RECIPE = {"nucleus_data": ["dsb2018_brightfield", "dsb2018_fluo"], "real_data": ["dsb2018_fluo"],
          "data_pixel_size": {"dsb2018_fluo": 0.5, "dsb2018_brightfield": 0.25}, "init": "fluorescence_nuclei"}


@dataclass
class ChannelNetTrainOptions:
    """A ChannelNet run: where the nucleus maps and real images come from, budget and architecture."""

    out: str
    nucleus_data: list[str]  # datasets whose nucleus label maps seed the synthetic images
    real_data: list[str] = field(default_factory=list)  # single-channel fluorescence nucleus datasets
    data_pixel_size: dict[str, float] = field(default_factory=dict)
    pixel_size: float = 0.5
    minutes: float | None = None
    max_steps: int | None = None
    resume: bool = False
    seed: int = 0
    crop: int = 160
    batch: int = 4
    lr: float = 1e-3
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    adaptor_widths: list[int] = field(default_factory=lambda: [8, 16, 32])
    init: str | None = None
    real_fraction: float = 0.25
    channels: tuple[int, int] = (1, 8)
    val_synthetic: int = 16
    val_real: int = 16
    val_minutes: float = 10.0
    max_instances: int = 32
    warm_steps: int = 300
    name: str = "fluorescence_nuclei_and_cells"
    quiet: bool = False


def channelnet_config(opts: ChannelNetTrainOptions) -> ModelConfig:
    """Nuclei + cells, one decoder each, behind a ChannelNet adaptor."""
    return ModelConfig(
        name=opts.name, in_channels=1, channel_names=["any"], modality="fluorescence", targets=list(TARGETS),
        decoder_groups=[[t] for t in TARGETS], adaptor={"kind": "channelnet", "widths": list(opts.adaptor_widths)},
        pixel_size_um=opts.pixel_size, widths=list(opts.widths),
        description="Nuclei and whole cells in fluorescence / multiplexed images with any number and order of "
                    "channels (ChannelNet adaptor)")


@torch.no_grad()
def transfer_from_nucleus_model(base: InstanSegNet, net: InstanSegNet) -> list[str]:
    """Copy a trained model's weights into ``net``: a weight of the same name and shape as is; otherwise a
    single-target model's encoder (first convolution spread over the adaptor's channels), and its decoder, head
    and MLP into every target's. Returns the names copied."""
    src = base.state_dict()
    dst = net.state_dict()
    copied = []
    for k in dst:
        if k in src and src[k].shape == dst[k].shape:  # same architecture (e.g. a ChannelNet model): as is
            dst[k].copy_(src[k])
            copied.append(k)
            continue
        cand = k
        for prefix in ("decoders.", "heads.", "mlps."):
            if k.startswith(prefix):
                rest = k[len(prefix):].split(".", 1)
                cand = f"{prefix}0.{rest[1]}" if len(rest) > 1 else k
        if cand not in src:
            continue
        s, d = src[cand], dst[k]
        if s.shape == d.shape:
            d.copy_(s)
        elif s.dim() == 4 and d.dim() == 4 and s.shape[0] == d.shape[0] and s.shape[1] == 1:
            d.copy_(s.expand_as(d) / d.shape[1])  # first convolution: one input channel → the adaptor's
        else:
            continue
        copied.append(k)
    return copied


def train_channelnet(opts: ChannelNetTrainOptions) -> dict:
    """Train (or resume) into ``opts.out``; returns the run's summary."""
    out = Path(opts.out)
    device = torch.device("cpu")
    if opts.resume:
        check_resumable(out)
    elif out.exists() and any(out.iterdir()):
        raise PhenosegError(f"out={out}: the folder is not empty; pass resume= to continue its training")
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    settings = MultiplexSettings(channels=tuple(opts.channels))
    maps = nucleus_maps(opts.nucleus_data, "train", opts.pixel_size, opts.data_pixel_size)
    val_maps = nucleus_maps(opts.nucleus_data, "val", opts.pixel_size, opts.data_pixel_size)
    if not maps or not val_maps:
        raise PhenosegError("nucleus_data: no train / val nucleus label maps found")
    real, real_val = [], []
    for d in opts.real_data:
        px = opts.data_pixel_size.get(Path(d).name)
        real += load_split(d, "train", opts.pixel_size, 1, px, ["nuclei"])
        real_val += load_split(d, "val", opts.pixel_size, 1, px, ["nuclei"], opts.val_real)
    val = validation_samples(val_maps, opts.val_synthetic, 256, opts.seed + 1, settings)
    val += [as_two_targets(s) for s in real_val]

    config = channelnet_config(opts)
    net = build_instanseg(config).to(device)
    copied: list[str] = []
    if opts.init and not opts.resume:
        copied = transfer_from_nucleus_model(load_model(opts.init), net)
    sampler = MultiplexSampler(maps, real, opts.crop, rng, settings, opts.real_fraction)

    def next_batch():
        return tuple(torch.from_numpy(a) for a in sampler.batch(opts.batch))

    opt = torch.optim.Adam(net.parameters(), lr=opts.lr)
    objective = InstanSegObjective(net, next_batch, val, device, out, rng, gen, opts.batch, opts.max_instances,
                                   0 if opts.init else opts.warm_steps)
    info = run_loop(objective, opt, LoopOptions(out, opts.minutes, opts.max_steps, opts.resume, opts.val_minutes,
                                                opts.lr, quiet=opts.quiet))
    best = load_model(out)
    best.config.training = {
        "kind": "channelnet", "nucleus_maps_from": [Path(d).name for d in opts.nucleus_data],
        "real_datasets": [Path(d).name for d in opts.real_data], "init": opts.init,
        "options": {k: v for k, v in dataclasses.asdict(opts).items() if k not in ("out",)},
        "steps": info["step"], "crops_seen": info["crops_seen"], "minutes": round(info["elapsed_s"] / 60, 1),
        "images": {"nucleus_maps_train": len(maps), "real_train": len(real), "val": len(val)},
        "weights_copied_from_init": len(copied),
    }
    save_model(best, out)
    (out / "history.json").write_text(json.dumps(info["history"], indent=1))
    return {"out": str(out), "best": info["best_score"], "steps": info["step"], "metrics": best.config.metrics}
