"""`phenoseg train-positivity`: MobileNet-ISAB on synthetic marker images only (method §4), on the generic loop.

Label maps: the nucleus maps of datasets in the manifest layout (brought to the model's pixel size), cells
grown from them (:func:`phenoseg.synthetic.multiplex.grow_cells`). A step draws ``sets`` windows; each gets one
rendered marker (:func:`phenoseg.synthetic.markers.render_marker`), every cell of the window its crop, and the
whole window is one set for the ISAB. Loss: sigmoid focal loss (γ = 2). Validation: F1@0.5 and ROC AUC on a
fixed list of synthetic sets from the val splits (mean of the two is the score).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from phenoseg.errors import PhenosegError
from phenoseg.models.positivity import MarkerPositivityNet, PositivityConfig, build_positivity
from phenoseg.synthetic.markers import MarkerSettings, render_marker
from phenoseg.training.loop import LoopOptions, run_loop


@dataclass
class LabelTile:
    """Nuclei and cells (same ids) of one image at the model's pixel size."""

    nuclei: np.ndarray
    cells: np.ndarray


def load_label_tiles(root: Path, split: str, pixel_size_um: float, seed: int = 0, limit: int | None = None,
                     assumed_px: float | None = None) -> list[LabelTile]:
    """Every ``split`` nucleus map of a dataset, resized to ``pixel_size_um``, with cells grown from it."""
    from phenoseg.io.datasets import image_pixel_size, load_manifest
    from phenoseg.io.labels import read_labels
    from phenoseg.preprocess import resize_labels
    from phenoseg.synthetic.multiplex import MultiplexSettings, grow_cells

    manifest = load_manifest(root)
    rng = np.random.default_rng(seed)
    out = []
    for image_id, part in manifest["split"].items():
        path = root / "labels" / f"{image_id}.tif"
        if part != split or not path.is_file() or (limit is not None and len(out) >= limit):
            continue
        nuclei = read_labels(path).astype(np.int64)
        px = image_pixel_size(manifest, image_id, None) or assumed_px or pixel_size_um
        f = px / pixel_size_um
        if abs(f - 1) > 1e-3:
            nuclei = resize_labels(nuclei, (max(8, round(nuclei.shape[0] * f)), max(8, round(nuclei.shape[1] * f))))
        if nuclei.max() == 0:
            continue
        out.append(LabelTile(nuclei, grow_cells(nuclei, rng, MultiplexSettings()).astype(np.int64)))
    return out


def window(tile: LabelTile, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` window of a tile (whole tile when smaller), ids renumbered 1..n."""
    h, w = tile.cells.shape
    y0 = int(rng.integers(0, max(1, h - size + 1)))
    x0 = int(rng.integers(0, max(1, w - size + 1)))
    cells = tile.cells[y0:y0 + size, x0:x0 + size]
    nuclei = tile.nuclei[y0:y0 + size, x0:x0 + size]
    uniq, inv = np.unique(cells, return_inverse=True)
    lut = np.zeros(int(uniq.max()) + 1, np.int64)
    lut[uniq] = np.arange(len(uniq)) if uniq[0] == 0 else np.arange(1, len(uniq) + 1)
    return lut[cells], np.where(nuclei > 0, lut[cells], 0)  # a nucleus has its cell's id


def set_crops(image: np.ndarray, cells: np.ndarray, config: PositivityConfig) -> tuple[np.ndarray, np.ndarray]:
    """(crops (N, 2, S, S), ids (N,)) of every cell of one marker image at the model's pixel size."""
    from phenoseg.phenotype.crops import gather_crops
    from phenoseg.phenotype.positivity import scale_marker
    from phenoseg.phenotype.table import object_centroids

    area, cy, cx = object_centroids(cells)
    ids = np.flatnonzero(area > 0)
    ids = ids[ids > 0]
    scaled = scale_marker(image, cells, config.normalise_percentiles)
    return gather_crops(scaled[None], cells, ids, cy[ids], cx[ids], config.crop_px, ["object"]), ids


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.), mean over cells."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    pt = torch.where(target > 0.5, p, 1 - p)
    return ((1 - pt) ** gamma * bce).mean() * 4.0


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U, ties counted half); NaN without both classes."""
    from scipy.stats import rankdata

    truth = np.asarray(truth, bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def f1_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of the positive class (1.0 when there are no positives and none predicted)."""
    tp = int((pred & truth).sum())
    denom = int(pred.sum() + truth.sum())
    return 2 * tp / denom if denom else 1.0


@dataclass
class SyntheticSet:
    """One marker image's cells: crops, ids and exact positivity (for validation and benchmarks)."""

    crops: np.ndarray
    positive: np.ndarray
    mean_intensity: np.ndarray  # the raw image's mean over each cell (the thresholding baseline)
    params: dict = field(default_factory=dict)
    level: np.ndarray | None = None  # each cell's latent level (what no imaging method sees)


def render_set(tiles: list[LabelTile], windows: int, size: int, config: PositivityConfig, settings: MarkerSettings,
               rng: np.random.Generator, gen: torch.Generator) -> SyntheticSet | None:
    """One set: ``windows`` random windows imaged with one pattern and intensity regime (the fields of one
    marker in one image), every cell's crop, truth, mean intensity and latent level."""
    parts, regime, pattern = [], None, None
    for _ in range(windows):
        cells, nuclei = window(tiles[int(rng.integers(len(tiles)))], size, rng)
        if cells.max() == 0:
            continue
        img, positive, p = render_marker(cells, nuclei, gen, settings, pattern, regime)
        regime, pattern = p, p["pattern"]
        crops, ids = set_crops(img, cells, config)
        sums = np.bincount(cells.ravel(), img.ravel(), minlength=int(cells.max()) + 1)
        counts = np.maximum(np.bincount(cells.ravel(), minlength=int(cells.max()) + 1), 1)
        parts.append((crops, positive[ids], (sums / counts)[ids], p["level"][ids]))
    if not parts:
        return None
    params = {k: v for k, v in regime.items() if k != "level"}
    return SyntheticSet(*(np.concatenate([q[i] for q in parts]) for i in range(3)), params,
                        np.concatenate([q[3] for q in parts]))


def make_sets(tiles: list[LabelTile], n: int, config: PositivityConfig, settings: MarkerSettings, seed: int,
              size: int = 192, windows: int = 4) -> list[SyntheticSet]:
    """``n`` fixed synthetic sets of ``windows`` windows each (see :func:`render_set`)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    sets = (render_set(tiles, windows, size, config, settings, rng, gen) for _ in range(n))
    return [s for s in sets if s is not None]


@torch.no_grad()
def score_sets(net: MarkerPositivityNet, sets: list[SyntheticSet]) -> dict:
    """Pooled F1@threshold and ROC AUC of the model on sets, and the per-set mean of both."""
    net.eval()
    probs = [torch.sigmoid(net(torch.from_numpy(s.crops))).numpy() for s in sets]
    truth = np.concatenate([s.positive for s in sets])
    allp = np.concatenate(probs)
    t = net.config.threshold
    return {"f1": f1_score(allp >= t, truth), "roc_auc": roc_auc(allp, truth), "cells": int(truth.size),
            "sets": len(sets), "positive_fraction": float(truth.mean())}


class PositivityObjective:
    """Synthetic sets on the fly → focal loss; validation on fixed sets."""

    def __init__(self, net: MarkerPositivityNet, train: list[LabelTile], val_sets: list[SyntheticSet], out: Path,
                 sets_per_step: int = 4, window_px: int = 160, max_cells: int = 128, seed: int = 0,
                 settings: MarkerSettings | None = None, windows: int = 3) -> None:
        self.net, self.train, self.val_sets, self.out = net, train, val_sets, Path(out)
        self.batch_size = sets_per_step
        self.window_px, self.max_cells, self.windows = window_px, max_cells, windows
        self.settings = settings or MarkerSettings()
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)

    def step(self, step: int) -> dict[str, torch.Tensor]:
        """Render ``sets_per_step`` marker sets and score all their cells, one ISAB set each."""
        self.net.train()
        losses = []
        for _ in range(self.batch_size):
            s = render_set(self.train, self.windows, self.window_px, self.net.config, self.settings, self.rng,
                           self.generator)
            if s is None:
                continue
            crops, positive = s.crops, s.positive
            if len(positive) > self.max_cells:  # a random subset keeps the population's mix
                keep = self.rng.choice(len(positive), self.max_cells, replace=False)
                crops, positive = crops[keep], positive[keep]
            x = torch.from_numpy(crops)
            if bool(torch.rand((), generator=self.generator) < 0.5):
                x = x.flip(-1)
            x = torch.rot90(x, int(torch.randint(4, (), generator=self.generator)), (-2, -1))
            logits = self.net(x.contiguous())
            losses.append(focal_loss(logits, torch.from_numpy(positive).float()))
        loss = torch.stack(losses).mean()
        return {"loss": loss}

    def validate(self) -> tuple[float, dict]:
        m = score_sets(self.net, self.val_sets)
        return 0.5 * (m["f1"] + m["roc_auc"]), m

    def save_best(self, details: dict, step: int) -> None:
        from phenoseg.models.zoo import save_model

        self.net.config.metrics = {"val_synthetic": details, "step": step}
        save_model(self.net, self.out)


@dataclass
class PositivityTrainOptions:
    """What `phenoseg train-positivity` sets."""

    data: list[Path]
    out: Path
    minutes: float | None = None
    max_steps: int | None = None
    resume: bool = False
    sets_per_step: int = 4
    lr: float = 1e-3
    seed: int = 0
    val_minutes: float = 5.0
    val_sets: int = 64
    isab: bool = True
    cell_stats: bool = True
    windows_per_set: int = 3
    init: Path | None = None
    name: str | None = None
    data_pixel_size: dict[str, float] = field(default_factory=dict)
    quiet: bool = False


def warm_start(net: MarkerPositivityNet, source: Path | str) -> None:
    """Start from another positivity model's weights: every tensor of the same shape is copied; a projection
    with extra inputs (``cell_stats``) keeps the old columns and starts the new ones at zero."""
    from phenoseg.models.zoo import load_model

    old = load_model(str(source)).state_dict()
    own = net.state_dict()
    for k, v in own.items():
        if k not in old:
            continue
        w = old[k]
        if w.shape == v.shape:
            own[k] = w
        elif w.ndim == 2 and w.shape[0] == v.shape[0] and w.shape[1] < v.shape[1]:
            own[k] = torch.cat([w, torch.zeros(v.shape[0], v.shape[1] - w.shape[1])], 1)
    net.load_state_dict(own)


def train_positivity(opts: PositivityTrainOptions) -> dict:
    """Train (or resume) a positivity model into ``opts.out``; returns the run's record."""
    if not opts.data:
        raise PhenosegError("data=: give at least one dataset folder with nucleus labels")
    cfg = PositivityConfig(name=opts.name or Path(opts.out).name, isab=opts.isab, cell_stats=opts.cell_stats,
                           description="marker positivity (MobileNet-ISAB) trained on synthetic markers only",
                           training={"data": [str(d) for d in opts.data], "sets_per_step": opts.sets_per_step,
                                     "windows_per_set": opts.windows_per_set,
                                     "settings": MarkerSettings().__dict__})
    train, val = [], []
    for d in opts.data:
        px = opts.data_pixel_size.get(Path(d).name)
        train += load_label_tiles(Path(d), "train", cfg.pixel_size_um, opts.seed, assumed_px=px)
        val += load_label_tiles(Path(d), "val", cfg.pixel_size_um, opts.seed, limit=16, assumed_px=px)
    if not train or not val:
        raise PhenosegError("data=: the datasets need train and val label maps (labels/<id>.tif)")
    torch.manual_seed(opts.seed)
    net = build_positivity(cfg)
    if opts.init is not None and not opts.resume:
        warm_start(net, opts.init)
    val_sets = make_sets(val, opts.val_sets, cfg, MarkerSettings(), seed=1234, windows=opts.windows_per_set)
    objective = PositivityObjective(net, train, val_sets, opts.out, opts.sets_per_step, seed=opts.seed,
                                    windows=opts.windows_per_set)
    optimizer = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=1e-4)
    loop = LoopOptions(out=Path(opts.out), minutes=opts.minutes, max_steps=opts.max_steps, resume=opts.resume,
                       val_minutes=opts.val_minutes, lr=opts.lr, quiet=opts.quiet)
    return run_loop(objective, optimizer, loop)
