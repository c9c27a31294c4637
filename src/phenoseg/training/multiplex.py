"""Training data for ChannelNet models (nuclei + cells from any number of channels): synthetic multiplexed
crops rendered on the fly from real nucleus label maps (:mod:`phenoseg.synthetic.multiplex`), mixed with real
nucleus-only fluorescence images (their cell target unannotated, so it trains the nucleus target only).

A batch holds images of one channel count drawn per batch; shorter images (the real ones) are padded with
all-NaN channels, which ChannelNet treats as absent. Channels are duplicated with fresh Poisson noise and
dropped (never the nuclear one) as the method's augmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phenoseg.io.datasets import image_pixel_size, label_file, load_manifest
from phenoseg.io.labels import read_labels
from phenoseg.normalise import percentile_normalise
from phenoseg.preprocess import resize_labels
from phenoseg.synthetic.multiplex import MultiplexSettings, render_multiplex
from phenoseg.training.instanseg.augment import geometric, intensity, random_crop
from phenoseg.training.instanseg.data import Sample, seed_targets

SYNTHETIC = "synthetic_multiplex"


def nucleus_maps(roots: list[str], split: str, model_pixel_size: float,
                 data_pixel_size: dict[str, float] | None = None, min_objects: int = 5) -> list[np.ndarray]:
    """The nucleus label maps of ``split`` in every dataset of ``roots``, at the model's pixel size."""
    maps: list[np.ndarray] = []
    for root in roots:
        root_p = Path(root)
        manifest = load_manifest(root_p)
        name = manifest.get("name", root_p.name)
        for image_id, s in manifest["split"].items():
            if s != split:
                continue
            f = label_file(root_p, "nuclei", image_id)
            px = image_pixel_size(manifest, image_id, (data_pixel_size or {}).get(name))
            if f is None or not px:
                continue
            lab = read_labels(f).astype(np.int32)
            shape = tuple(max(8, int(round(n * px / model_pixel_size))) for n in lab.shape)
            lab = resize_labels(lab, shape)
            if len(np.unique(lab)) - 1 >= min_objects:
                maps.append(lab)
    return maps


def _relabel(lab: np.ndarray) -> np.ndarray:
    ids, inv = np.unique(lab, return_inverse=True)
    out = inv.reshape(lab.shape).astype(np.int32)
    return out if ids[0] == 0 else out + 1


def crop_map(maps: list[np.ndarray], size: int, rng: np.random.Generator,
             zoom: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """A size×size window of a random nucleus map (area-weighted), seen at a random ``zoom`` (log-uniform;
    > 1 enlarges the nuclei), relabelled 1..n; padded with 0 where the map is smaller."""
    areas = np.array([m.size for m in maps], np.float64)
    m = maps[int(rng.choice(len(maps), p=areas / areas.sum()))]
    z = float(np.exp(rng.uniform(np.log(zoom[0]), np.log(zoom[1]))))
    src = max(8, int(round(size / z)))
    y0 = int(rng.integers(0, max(1, m.shape[0] - src + 1)))
    x0 = int(rng.integers(0, max(1, m.shape[1] - src + 1)))
    win = m[y0 : y0 + src, x0 : x0 + src]
    if src != size:
        win = resize_labels(win, (max(1, round(win.shape[0] * z)), max(1, round(win.shape[1] * z))))[:size, :size]
    win = np.pad(win, ((0, size - win.shape[0]), (0, size - win.shape[1])))
    return _relabel(win)


def synthetic_sample(nuclei: np.ndarray, rng: np.random.Generator, settings: MultiplexSettings,
                     n_channels: int | None = None, image_id: str = "") -> Sample:
    """A rendered, normalised multiplexed sample (targets nuclei, cells)."""
    s = render_multiplex(nuclei, rng, settings, n_channels)
    labels = np.stack([s.nuclei, s.cells]).astype(np.int32)
    image = percentile_normalise(s.image).astype(np.float32)
    return Sample(SYNTHETIC, image_id, image, labels, seed_targets(labels))


def validation_samples(maps: list[np.ndarray], n: int, size: int, seed: int,
                       settings: MultiplexSettings | None = None) -> list[Sample]:
    """``n`` fixed synthetic samples (channel counts spread over the settings' range) for validation."""
    rng = np.random.default_rng(seed)
    settings = settings or MultiplexSettings()
    lo, hi = settings.channels
    out = []
    for i in range(n):
        count = lo + (i * (hi - lo + 1)) // max(1, n) if hi > lo else lo
        out.append(synthetic_sample(crop_map(maps, size, rng), rng, settings, count, f"val{i:03d}"))
    return out


def as_two_targets(sample: Sample) -> Sample:
    """A nucleus-only real sample with an unannotated cell target."""
    if sample.labels.shape[0] == 2:
        return sample
    labels = np.concatenate([sample.labels[:1], np.full_like(sample.labels[:1], -1)])
    seed = np.concatenate([sample.seed[:1], np.zeros_like(sample.seed[:1])])
    return Sample(sample.dataset, sample.image_id, sample.image, labels, seed)


def pad_channels(img: np.ndarray, count: int) -> np.ndarray:
    """(C, H, W) padded to ``count`` channels with all-NaN (absent) channels."""
    if img.shape[0] >= count:
        return img
    pad = np.full((count - img.shape[0],) + img.shape[1:], np.nan, np.float32)
    return np.concatenate([img, pad])


def duplicate_channels(img: np.ndarray, rng: np.random.Generator, p: float = 0.3) -> np.ndarray:
    """With probability ``p``, one channel copied with fresh Poisson noise (ChannelNet's augmentation)."""
    if rng.random() >= p:
        return img
    src = img[int(rng.integers(0, img.shape[0]))]
    photons = float(rng.uniform(20, 400))
    copy = rng.poisson(np.clip(src, 0, None) * photons).astype(np.float32) / photons
    return np.concatenate([img, copy[None]])


class MultiplexSampler:
    """Batches (images (B, C, S, S) NaN-padded, labels (B, 2, S, S), seed targets (B, 2, S, S))."""

    def __init__(self, maps: list[np.ndarray], real: list[Sample], crop: int, rng: np.random.Generator,
                 settings: MultiplexSettings | None = None, real_fraction: float = 0.25,
                 zoom: tuple[float, float] = (0.7, 2.2)):
        self.maps, self.crop, self.rng, self.zoom = maps, crop, rng, zoom
        self.real = [as_two_targets(s) for s in real]
        self.settings = settings or MultiplexSettings()
        self.real_fraction = real_fraction if self.real else 0.0

    def _synthetic(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = synthetic_sample(crop_map(self.maps, self.crop, self.rng, self.zoom), self.rng, self.settings, count)
        img, lab, seed = geometric(s.image, s.labels, s.seed, self.rng)
        return img, lab, seed

    def _real(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.real[int(self.rng.integers(0, len(self.real)))]
        img, lab, seed = geometric(*random_crop(s, self.crop, self.rng), self.rng)
        img = intensity(img, self.rng, rgb=False, strong=False)
        return duplicate_channels(img, self.rng), lab, seed

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch; its channel count drawn from the settings' range (then a channel maybe dropped)."""
        lo, hi = self.settings.channels
        count = int(self.rng.integers(lo, hi + 1))
        imgs, labs, seeds = [], [], []
        for _ in range(size):
            if self.rng.random() < self.real_fraction:
                img, lab, seed = self._real()
            else:
                img, lab, seed = self._synthetic(count)
            imgs.append(img)
            labs.append(lab)
            seeds.append(seed)
        width = max(i.shape[0] for i in imgs)
        return np.stack([pad_channels(i, width) for i in imgs]), np.stack(labs), np.stack(seeds)
