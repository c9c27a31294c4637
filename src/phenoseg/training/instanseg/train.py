"""`phenoseg train`: an InstanSeg model (one or more targets) trained on datasets in the manifest layout."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from phenoseg.devices import pick_device
from phenoseg.errors import PhenosegError
from phenoseg.evaluation.datasets import evaluate_samples, network_outputs, selection_score
from phenoseg.evaluation.tuning import set_config_params, tune_decoder
from phenoseg.inference.runner import build_decoder
from phenoseg.io.datasets import dataset_targets, find_image_file, load_manifest
from phenoseg.io.images import default_channel_names
from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import build_instanseg
from phenoseg.models.zoo import load_model, save_model
from phenoseg.training.instanseg.augment import CropSampler
from phenoseg.training.instanseg.data import Sample, load_split
from phenoseg.training.instanseg.objective import InstanSegObjective
from phenoseg.training.loop import LoopOptions, check_resumable, run_loop


@dataclass
class TrainOptions:
    """Everything `phenoseg train` can set."""

    data: list[str]
    out: str
    pixel_size: float = 0.5
    minutes: float | None = None
    max_steps: int | None = None
    resume: bool = False
    seed: int = 0
    data_pixel_size: dict[str, float] = field(default_factory=dict)
    crop: int = 192
    batch: int = 4
    lr: float = 1e-3
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    blocks_per_level: int = 1
    window: int = 64
    max_instances: int = 32
    warm_steps: int = 300
    val_minutes: float = 5.0
    val_max_images: int = 40
    device: str = "auto"
    strong_augment: bool = True
    scale_jitter: float = 0.0
    name: str | None = None
    modality: str = "brightfield"
    description: str = ""
    quiet: bool = False
    init: str | None = None
    workers: int = 0
    tune: bool = True
    grow: bool = False
    targets: list[str] | None = None  # None: every target the datasets have labels for
    separate_decoders: bool = False  # one decoder per target instead of one shared
    overwrite: bool = False  # replace a model already in ``out`` (else refused unless resuming)
    channelnet: bool = False  # a ChannelNet adaptor: images with any number / order of channels


class CropStream(torch.utils.data.IterableDataset):
    """Endless augmented batches; each data-loading worker draws from its own seeded generator."""

    def __init__(self, samples: list[Sample], crop: int, rgb: bool, strong: bool, batch: int, seed: list[int],
                 scale_jitter: float = 0.0):
        super().__init__()
        self.samples, self.crop, self.rgb, self.strong, self.batch, self.seed = samples, crop, rgb, strong, batch, seed
        self.scale_jitter = scale_jitter

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        torch.set_num_threads(1)
        rng = np.random.default_rng([*self.seed, info.id if info else 0])
        sampler = CropSampler(self.samples, self.crop, self.rgb, self.strong, rng, self.scale_jitter)
        while True:
            yield tuple(torch.from_numpy(a) for a in sampler.batch(self.batch))


def _detect_channels(opts: TrainOptions) -> int:
    from phenoseg.io.images import read_image

    root = Path(opts.data[0])
    manifest = load_manifest(root)
    first = next(iter(manifest["split"]))
    return int(read_image(find_image_file(root, first)).data.shape[0])


def _targets(opts: TrainOptions) -> list[str]:
    if opts.targets:
        return list(opts.targets)
    found: list[str] = []
    for d in opts.data:
        found += [t for t in dataset_targets(Path(d)) if t not in found]
    if not found:
        raise PhenosegError("no label folders (labels/, labels_nuclei/, labels_cells/) in the given datasets")
    return found


def _load(opts: TrainOptions, split: str, channels: int | None, targets: list[str], max_images: int | None
          ) -> list[Sample]:
    out: list[Sample] = []
    for d in opts.data:
        name = Path(d).name
        out += load_split(d, split, opts.pixel_size, channels, opts.data_pixel_size.get(name), targets, max_images)
    return out


def tune_thresholds(net, samples: list[Sample], device: torch.device) -> dict:
    """Seed and mask thresholds of every target chosen on ``samples`` (written into ``net.config``); returns
    the scores with them."""
    raws = network_outputs(net, samples, device)
    decoder = copy.deepcopy(build_decoder(net)).cpu()
    chosen = tune_decoder(decoder, len(net.config.targets), lambda t: selection_score(
        evaluate_samples(net, samples, device, raws, decoder, targets=[t])))
    for target, params in zip(net.config.targets, chosen):
        set_config_params(net.config, target, params)
    return evaluate_samples(net, samples, device, raws)


def train(opts: TrainOptions) -> dict:
    """Train (or resume) a model into ``opts.out``; returns a summary with the best validation scores.

    On the CPU with ``workers=0`` a run is bit-for-bit reproducible from its seed (deterministic
    algorithms are switched on for its duration); GPU runs and data-loading workers trade that for speed.
    """
    device = pick_device(opts.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _train(opts, device)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def _config(opts: TrainOptions, out: Path, channels: int, targets: list[str]) -> tuple[ModelConfig, object]:
    """The new model's config (and the --init model, or None)."""
    any_channels = opts.channelnet
    config = ModelConfig(
        name=opts.name or out.name, description=opts.description, in_channels=1 if any_channels else channels,
        channel_names=["any"] if any_channels else default_channel_names(channels, channels == 3),
        adaptor={"kind": "channelnet"} if any_channels else None,
        modality=opts.modality, targets=targets, pixel_size_um=opts.pixel_size, widths=list(opts.widths),
        blocks_per_level=opts.blocks_per_level, decoder_groups=[[t] for t in targets] if opts.separate_decoders
        else None,
    )
    base = None
    if opts.init:  # fine-tune: start from a model's weights and architecture
        base = load_model(opts.init)
        bc = base.config
        if opts.channelnet and bc.adaptor is None:
            raise PhenosegError(f"init={opts.init}: has no ChannelNet adaptor; channelnet= cannot apply to it "
                                "(start without init=, or from fluorescence_nuclei_and_cells)")
        if not bc.accepts(channels):
            raise PhenosegError(f"init={opts.init}: {bc.in_channels} channel(s), the data have {channels}")
        if opts.targets and list(opts.targets) != list(bc.targets):
            raise PhenosegError(f"init={opts.init}: predicts {', '.join(bc.targets)}, targets= asks for "
                                f"{', '.join(opts.targets)}")
        if opts.separate_decoders and bc.target_groups() != [[t] for t in bc.targets]:
            raise PhenosegError(f"init={opts.init}: its targets share one decoder; --separate-decoders cannot apply "
                                "to a model trained that way")
        config.targets, config.decoder_groups, config.adaptor = list(bc.targets), bc.decoder_groups, bc.adaptor
        if bc.adaptor is not None:  # fine-tuning a ChannelNet model: it keeps taking any channel count
            config.in_channels, config.channel_names = bc.in_channels, list(bc.channel_names)
        config.postprocess = copy.deepcopy(bc.postprocess)
        if not opts.grow:  # plain fine-tuning keeps the architecture; --grow takes widths / blocks from opts
            config.widths, config.blocks_per_level = list(bc.widths), bc.blocks_per_level
        config.dim_positional, config.dim_conditional = bc.dim_positional, bc.dim_conditional
        config.mlp_hidden = bc.mlp_hidden
    for pp in config.postprocess.values():
        pp.window = opts.window
    return config, base


def _train(opts: TrainOptions, device: torch.device) -> dict:
    out = Path(opts.out)
    if opts.resume and opts.overwrite:
        raise PhenosegError("resume= continues the model in out=, overwrite= replaces it: choose one")
    if opts.resume:
        check_resumable(out)
    elif out.exists() and any(out.iterdir()) and not opts.overwrite:
        raise PhenosegError(f"out={out}: the folder is not empty (a model is there?); pass resume= to continue "
                            "its training or overwrite= to replace it")
    elif opts.overwrite:
        import shutil

        shutil.rmtree(out / "checkpoint", ignore_errors=True)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)

    channels = _detect_channels(opts)
    config, base = _config(opts, out, channels, _targets(opts))
    targets = config.targets
    wanted = None if config.adaptor is not None else channels  # an adaptor takes every channel count
    train_samples = _load(opts, "train", wanted, targets, None)
    val_samples = _load(opts, "val", wanted, targets, opts.val_max_images)
    if not train_samples:
        raise PhenosegError("no training images with labels found in the given datasets (their 'split' in "
                            "manifest.json names none 'train', or no image has a label file)")
    held_out = []
    if not val_samples:  # no val split: hold out every 10th training image (at least one), and say so
        if len(train_samples) < 2:
            raise PhenosegError("the datasets have no 'val' split and a single training image: nothing to validate "
                                "on (mark some images \"val\" in manifest.json)")
        n = len(train_samples)
        k = max(1, n // 10)
        picks = set(range(n - 1, -1, -(n // k))[:k])  # k images, evenly spaced from the last
        val_samples = [s for i, s in enumerate(train_samples) if i in picks]
        train_samples = [s for i, s in enumerate(train_samples) if i not in picks]
        held_out = [f"{s.dataset}/{s.image_id}" for s in val_samples]
        if not opts.quiet:
            print(f"no 'val' split in the datasets: validating on {len(held_out)} of the training images, held out "
                  f"from training ({', '.join(held_out[:5])}{', ...' if len(held_out) > 5 else ''})", flush=True)
    names = sorted({s.dataset for s in train_samples})
    net = build_instanseg(config).to(device)
    if base is not None and not opts.resume:
        if opts.grow:
            from phenoseg.training.grow import grow_network

            grow_network(base, net)
        else:
            net.load_state_dict(base.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=opts.lr)
    step0 = 0
    if opts.resume:
        step0 = json.loads((out / "checkpoint" / "state.json").read_text())["info"]["step"]
    rgb = channels == 3 and config.adaptor is None
    if opts.workers > 0:  # crops drawn in worker processes (seeded by run seed and step: resumable, not bitwise)
        stream = CropStream(train_samples, opts.crop, rgb, opts.strong_augment, opts.batch,
                            [opts.seed, step0], opts.scale_jitter)
        loader = iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=opts.workers,
                                                  pin_memory=device.type == "cuda", prefetch_factor=4))

        def next_batch():
            return next(loader)
    else:
        sampler = CropSampler(train_samples, opts.crop, rgb, opts.strong_augment, rng, opts.scale_jitter)

        def next_batch():
            return tuple(torch.from_numpy(a) for a in sampler.batch(opts.batch))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # a fine-tuned model needs no Dice warm start
    objective = InstanSegObjective(net, next_batch, val_samples, device, out, rng, gen, opts.batch,
                                   opts.max_instances, 0 if opts.init else opts.warm_steps)
    info = run_loop(objective, opt, LoopOptions(out, opts.minutes, opts.max_steps, opts.resume, opts.val_minutes,
                                                opts.lr, quiet=opts.quiet))

    best = load_model(out, device)
    if val_samples and opts.tune:
        per = tune_thresholds(best, val_samples, device)
        best.config.metrics = {"val_model_resolution": per, "step": best.config.metrics.get("step")}
    best.config.training = {
        "datasets": names,
        "targets": targets,
        "data_pixel_size_overrides": opts.data_pixel_size,
        "options": {k: v for k, v in dataclasses.asdict(opts).items() if k not in ("data", "out")},
        "steps": info["step"],
        "crops_seen": info["crops_seen"],
        "minutes": round(info["elapsed_s"] / 60, 1),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    best.config.training["images"] = {"train": len(train_samples), "val": len(val_samples),
                                      "val_held_out_from_train": held_out}
    save_model(best, out)
    (out / "history.json").write_text(json.dumps(info["history"], indent=1))
    return {"out": str(out), "selection_score_f1_mean": info["best_score"], "steps": info["step"],
            "minutes": best.config.training["minutes"], "train_images": len(train_samples),
            "val_images": len(val_samples), "val_held_out_from_train": held_out, "metrics": best.config.metrics}
