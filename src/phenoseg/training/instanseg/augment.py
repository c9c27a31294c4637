"""Random crops and augmentations (geometry, colour / stain, blur, noise, JPEG) on numpy crops."""

from __future__ import annotations

import io

import numpy as np
from scipy import ndimage as ndi

from phenoseg.preprocess import resize_labels
from phenoseg.training.instanseg.data import Sample

# Ruifrok & Johnston H&E-DAB stain vectors (rows: H, E, DAB) for stain jitter in optical density space
_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)
_HED /= np.linalg.norm(_HED, axis=1, keepdims=True)
_HED_INV = np.linalg.inv(_HED).astype(np.float32)


def random_crop(sample: Sample, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A size×size crop (labels and seed targets (..., H, W): one map per target). Images smaller than the
    crop are reflect-padded (labels −1 there: ignored), so the network never sees artificial constant
    borders that would skew its normalisation statistics."""
    c, h, w = sample.image.shape
    y0 = int(rng.integers(0, max(1, h - size + 1)))
    x0 = int(rng.integers(0, max(1, w - size + 1)))
    img = sample.image[:, y0 : y0 + size, x0 : x0 + size]
    lab = sample.labels[..., y0 : y0 + size, x0 : x0 + size]
    seed = sample.seed[..., y0 : y0 + size, x0 : x0 + size]
    ph, pw = size - img.shape[1], size - img.shape[2]
    if ph or pw:
        mode = "reflect" if ph < img.shape[1] and pw < img.shape[2] else "symmetric"
        img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode=mode)
        lead = [(0, 0)] * (lab.ndim - 2)
        lab = np.pad(lab, lead + [(0, ph), (0, pw)], constant_values=-1)
        seed = np.pad(seed, lead + [(0, ph), (0, pw)])
    return img.astype(np.float32), lab.astype(np.int32), seed.astype(np.float32)


def rescaled_crop(sample: Sample, size: int, zoom: float, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A size×size crop of the sample seen at ``zoom`` × its pixel size (zoom > 1 enlarges nuclei).

    A (size / zoom)² region is cut and resized: the image bilinearly, the labels and the seed target
    by nearest pixel, so both stay exactly aligned and ignored pixels stay −1.
    """
    src = max(8, int(round(size / zoom)))
    img, lab, seed = random_crop(sample, src, rng)
    if src == size:
        return img, lab, seed
    # pixel-centre sampling positions of the output grid in the source crop
    pos = (np.arange(size, dtype=np.float32) + 0.5) * (src / size) - 0.5
    coords = np.stack(np.meshgrid(pos, pos, indexing="ij"))
    img = np.stack([ndi.map_coordinates(ch, coords, order=1, mode="nearest") for ch in img])
    return img.astype(np.float32), resize_labels(lab, (size, size)), resize_labels(seed, (size, size))


def geometric(img: np.ndarray, lab: np.ndarray, seed: np.ndarray, rng: np.random.Generator):
    """Random 90° rotation and flip, applied alike to image, labels and seed target."""
    k = int(rng.integers(0, 4))
    flip = bool(rng.integers(0, 2))
    img = np.rot90(img, k, axes=(-2, -1))
    lab = np.rot90(lab, k, axes=(-2, -1))
    seed = np.rot90(seed, k, axes=(-2, -1))
    if flip:
        img, lab, seed = img[..., ::-1], lab[..., ::-1], seed[..., ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(lab), np.ascontiguousarray(seed)


def stain_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 0.05) -> np.ndarray:
    """Perturb H&E stain concentrations in optical density space (RGB images in 0..1)."""
    od = -np.log(np.clip(img, 1e-3, 1.0))
    conc = np.tensordot(_HED_INV.T, od, axes=1)
    alpha = rng.uniform(1 - strength * 4, 1 + strength * 4, size=(3, 1, 1)).astype(np.float32)
    beta = rng.uniform(-strength, strength, size=(3, 1, 1)).astype(np.float32)
    od2 = np.tensordot(_HED.T, conc * alpha + beta, axes=1)
    return np.exp(-od2).astype(np.float32)


def jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG round trip at a random quality (RGB or single channel)."""
    from PIL import Image as PILImage

    q = int(rng.integers(30, 95))
    u8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    arr = np.moveaxis(u8, 0, -1) if img.shape[0] == 3 else u8[0]
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="JPEG", quality=q)
    out = np.asarray(PILImage.open(io.BytesIO(buf.getvalue()))).astype(np.float32) / 255.0
    return np.moveaxis(out, -1, 0) if img.shape[0] == 3 else out[None]


def intensity(img: np.ndarray, rng: np.random.Generator, rgb: bool, strong: bool) -> np.ndarray:
    """Colour / stain / brightness / contrast / gamma / blur / noise / JPEG jitter."""
    if rgb and strong and rng.random() < 0.7:
        img = stain_jitter(np.clip(img, 0, 1), rng)
    if rng.random() < 0.8:
        gain = rng.uniform(0.7, 1.3, size=(img.shape[0] if strong else 1, 1, 1)).astype(np.float32)
        offset = rng.uniform(-0.15, 0.15, size=(img.shape[0] if strong else 1, 1, 1)).astype(np.float32)
        img = img * gain + offset
    if rng.random() < 0.3:
        g = float(rng.uniform(0.7, 1.4))
        img = np.clip(img, 0, None) ** g
    if strong and rng.random() < 0.25:
        img = ndi.gaussian_filter(img, sigma=(0, float(rng.uniform(0.3, 1.5)), float(rng.uniform(0.3, 1.5))))
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(0.005, 0.05), size=img.shape).astype(np.float32)
    if strong and img.shape[0] in (1, 3) and rng.random() < 0.25:
        img = jpeg(img, rng)
    return img.astype(np.float32)


class CropSampler:
    """Draws augmented batches: a dataset uniformly at random, then an image weighted by its area."""

    def __init__(self, samples: list[Sample], crop: int, rgb: bool, strong: bool, rng: np.random.Generator,
                 scale_jitter: float = 0.0):
        self.crop = crop
        self.scale_jitter = scale_jitter
        self.rgb = rgb
        self.strong = strong
        self.rng = rng
        self.by_dataset: dict[str, list[Sample]] = {}
        for s in samples:
            self.by_dataset.setdefault(s.dataset, []).append(s)
        self.names = sorted(self.by_dataset)
        self.weights = {
            n: np.array([s.image[0].size for s in v], np.float64) / sum(s.image[0].size for s in v)
            for n, v in self.by_dataset.items()
        }

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images (B, C, S, S), labels (B, T, S, S), seed targets (B, T, S, S)); (B, S, S) for samples whose
        labels are single (H, W) maps."""
        imgs, labs, seeds = [], [], []
        for _ in range(size):
            name = self.names[int(self.rng.integers(0, len(self.names)))]
            pool = self.by_dataset[name]
            s = pool[int(self.rng.choice(len(pool), p=self.weights[name]))]
            if self.scale_jitter > 0 and self.rng.random() < 0.5:
                zoom = float(np.exp(self.rng.uniform(-1, 1) * np.log1p(self.scale_jitter)))
                cropped = rescaled_crop(s, self.crop, zoom, self.rng)
            else:
                cropped = random_crop(s, self.crop, self.rng)
            img, lab, seed = geometric(*cropped, self.rng)
            imgs.append(intensity(img, self.rng, self.rgb, self.strong))
            labs.append(lab)
            seeds.append(seed)
        width = max(i.shape[0] for i in imgs)  # images of other channel counts (ChannelNet): absent channels
        imgs = [np.concatenate([i, np.full((width - i.shape[0],) + i.shape[1:], np.nan, np.float32)])
                if i.shape[0] < width else i for i in imgs]
        return np.stack(imgs), np.stack(labs), np.stack(seeds)
