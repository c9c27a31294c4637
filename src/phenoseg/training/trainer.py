"""The training loop: time budget, validation by F1^μ, best checkpoint, resume, threshold tuning."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from phenoseg.errors import PhenosegError
from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise
from phenoseg.inference.runner import build_decoder, network_output
from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import InstanSegNet, build_instanseg, split_target
from phenoseg.models.zoo import save_model
from phenoseg.postprocess.membership import relative_grid
from phenoseg.training.augment import CropSampler
from phenoseg.training.checkpoint import load_checkpoint, save_checkpoint
from phenoseg.training.dataset import Sample, load_split
from phenoseg.training.losses import instanseg_loss


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


def pick_device(name: str) -> torch.device:
    """'auto' → CUDA, else MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PhenosegError("--device cuda: no CUDA device available")
    return torch.device(name)


def _load(opts: TrainOptions, split: str, channels: int, max_images: int | None) -> list[Sample]:
    out: list[Sample] = []
    for d in opts.data:
        name = Path(d).name
        out += load_split(d, split, opts.pixel_size, channels, opts.data_pixel_size.get(name), max_images=max_images)
    return out


def _detect_channels(opts: TrainOptions) -> int:
    from phenoseg.io.images import read_image
    from phenoseg.training.dataset import find_image_file, load_manifest

    root = Path(opts.data[0])
    manifest = load_manifest(root)
    first = next(iter(manifest["split"]))
    return int(read_image(find_image_file(root, first)).data.shape[0])


def evaluate_samples(net: InstanSegNet, samples: list[Sample], device: torch.device,
                     raws: list[torch.Tensor] | None = None, **thresholds) -> dict[str, dict]:
    """Per-dataset scores (counts summed over images) at model resolution."""
    decoder = copy.deepcopy(build_decoder(net)).cpu()  # decoded on the CPU, whatever the training device
    net.eval()
    counts: dict[str, MatchCounts] = {}
    for i, s in enumerate(samples):
        raw = raws[i] if raws is not None else network_output(net, s.image, device).cpu()
        labels = decoder(raw, **thresholds)[0, 0].cpu().numpy()
        counts[s.dataset] = counts.get(s.dataset, MatchCounts()) + match_counts(s.labels, labels)
    return {name: summarise(c) for name, c in counts.items()}


def selection_score(per_dataset: dict[str, dict]) -> float:
    """Mean over datasets of F1^μ."""
    return float(np.mean([m["f1_mean"] for m in per_dataset.values()])) if per_dataset else 0.0


def tune_thresholds(net: InstanSegNet, samples: list[Sample], device: torch.device) -> tuple[dict, dict]:
    """Grid search of seed and mask thresholds on validation images (network run once)."""
    net.eval()
    raws = [network_output(net, s.image, device).cpu() for s in samples]
    best = (-1.0, {}, {})
    for st in (0.3, 0.4, 0.5, 0.6, 0.7):
        for mt in (0.4, 0.5, 0.6):
            per = evaluate_samples(net, samples, device, raws, seed_threshold=st, mask_threshold=mt)
            score = selection_score(per)
            if score > best[0]:
                best = (score, {"seed_threshold": st, "mask_threshold": mt}, per)
    return best[1], best[2]


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


def _train(opts: TrainOptions, device: torch.device) -> dict:
    out = Path(opts.out)
    ckpt_dir = out / "checkpoint"
    if opts.resume and not (ckpt_dir / "state.json").is_file():
        raise PhenosegError(f"--resume: no checkpoint in {ckpt_dir}")
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)

    channels = _detect_channels(opts)
    train_samples = _load(opts, "train", channels, None)
    val_samples = _load(opts, "val", channels, opts.val_max_images)
    if not train_samples:
        raise PhenosegError("no training images with labels found in the given datasets")
    names = sorted({s.dataset for s in train_samples})
    config = ModelConfig(
        name=opts.name or out.name,
        description=opts.description,
        in_channels=channels,
        channel_names=["red", "green", "blue"] if channels == 3 else [f"channel_{i}" for i in range(channels)],
        modality=opts.modality,
        pixel_size_um=opts.pixel_size,
        widths=list(opts.widths),
        blocks_per_level=opts.blocks_per_level,
    )
    for pp in config.postprocess.values():
        pp.window = opts.window
    if opts.init:  # fine-tune: start from a model's weights and architecture
        from phenoseg.models.zoo import load_model

        base = load_model(opts.init)
        if base.config.in_channels != channels:
            raise PhenosegError(f"--init {opts.init}: {base.config.in_channels} channel(s), the data have {channels}")
        if not opts.grow:  # plain fine-tuning keeps the architecture; --grow takes widths / blocks from opts
            config.widths, config.blocks_per_level = list(base.config.widths), base.config.blocks_per_level
        config.dim_positional, config.dim_conditional = base.config.dim_positional, base.config.dim_conditional
        config.mlp_hidden = base.config.mlp_hidden
    net = build_instanseg(config).to(device)
    if opts.init and not opts.resume:
        if opts.grow:
            from phenoseg.training.grow import grow_network

            grow_network(base, net)
        else:
            net.load_state_dict(base.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=opts.lr)
    info = {"step": 0, "elapsed_s": 0.0, "best_score": -1.0, "crops_seen": 0, "history": []}
    if opts.resume:
        info = load_checkpoint(ckpt_dir, net, opt, rng, gen)
    if opts.workers > 0:  # crops drawn in worker processes (seeded by run seed and step: resumable, not bitwise)
        stream = CropStream(train_samples, opts.crop, channels == 3, opts.strong_augment, opts.batch,
                            [opts.seed, info["step"]], opts.scale_jitter)
        loader = iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=opts.workers,
                                                  pin_memory=device.type == "cuda", prefetch_factor=4))

        def next_batch():
            return next(loader)
    else:
        sampler = CropSampler(train_samples, opts.crop, channels == 3, opts.strong_augment, rng, opts.scale_jitter)

        def next_batch():
            return tuple(torch.from_numpy(a) for a in sampler.batch(opts.batch))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    grid = relative_grid(opts.window, config.dim_positional, config.coord_scale, device)

    budget_s = opts.minutes * 60 if opts.minutes else None
    start = time.time() - info["elapsed_s"]
    last_val = time.time()
    bar = tqdm(total=opts.max_steps, initial=info["step"], disable=opts.quiet, unit="step", dynamic_ncols=True)
    run_loss = None

    def validate_and_save() -> None:
        per = evaluate_samples(net, val_samples, device) if val_samples else {}
        score = selection_score(per)
        info["history"].append({"step": info["step"], "elapsed_s": round(time.time() - start, 1), "val": per})
        if score > info["best_score"] or not (out / "weights.safetensors").is_file():
            info["best_score"] = score
            net.config.metrics = {"val_model_resolution": per, "step": info["step"]}
            save_model(net, out)
        info["elapsed_s"] = time.time() - start
        save_checkpoint(ckpt_dir, net, opt, info, rng, gen)
        bar.set_postfix(loss=f"{run_loss or 0:.3f}", val_f1=f"{score:.3f}", best=f"{info['best_score']:.3f}")
        net.train()

    net.train()
    while True:
        elapsed = time.time() - start
        out_of_time = budget_s is not None and elapsed >= budget_s
        if out_of_time or (opts.max_steps is not None and info["step"] >= opts.max_steps):
            break
        if budget_s is not None and elapsed > 0.8 * budget_s:
            for g in opt.param_groups:
                g["lr"] = opts.lr * 0.2
        imgs, labs, seeds = next_batch()
        x = imgs.to(device, non_blocking=True)
        lab = labs.long().to(device, non_blocking=True)
        sd = seeds.to(device, non_blocking=True)
        raw = net(x)
        warm = info["step"] < opts.warm_steps and not opts.init  # a fine-tuned model needs no Dice warm start
        seed_logits, offsets, cond = split_target(raw, 0, config.dim_positional, config.dim_conditional,
                                                  config.offset_range)
        ls, li = instanseg_loss(seed_logits, offsets, cond, lab, sd, net.mlps[0], grid,
                                opts.max_instances, warm, gen)
        loss = ls + 1.5 * li
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        info["step"] += 1
        info["crops_seen"] += opts.batch
        lv = float(loss.detach())
        run_loss = lv if run_loss is None else 0.98 * run_loss + 0.02 * lv
        bar.update(1)
        bar.set_postfix(loss=f"{run_loss:.3f}", best=f"{info['best_score']:.3f}")
        if time.time() - last_val > opts.val_minutes * 60:
            validate_and_save()
            last_val = time.time()
    validate_and_save()
    bar.close()

    # tune postprocessing thresholds of the best model on validation images
    from phenoseg.models.zoo import load_model

    best = load_model(out, device)
    if val_samples and opts.tune:
        thresholds, per = tune_thresholds(best, val_samples, device)
        for k, v in thresholds.items():
            for pp in best.config.postprocess.values():
                setattr(pp, k, v)
        best.config.metrics = {"val_model_resolution": per, "step": best.config.metrics.get("step")}
    best.config.training = {
        "datasets": names,
        "data_pixel_size_overrides": opts.data_pixel_size,
        "options": {k: v for k, v in dataclasses.asdict(opts).items() if k not in ("data", "out")},
        "steps": info["step"],
        "crops_seen": info["crops_seen"],
        "minutes": round(info["elapsed_s"] / 60, 1),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    save_model(best, out)
    (out / "history.json").write_text(json.dumps(info["history"], indent=1))
    return {"out": str(out), "best_score": info["best_score"], "steps": info["step"], "metrics": best.config.metrics}
