"""InstanSeg training data: datasets in the manifest layout, at a model's pixel size, held in memory.

Each sample carries one label map per target of the model (−1 = unannotated; a target the dataset has no
labels for is −1 everywhere, so its losses are skipped for that sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.io.datasets import find_image_file, image_pixel_size, label_file, load_manifest
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels
from phenoseg.preprocess import prepare, resize_labels
from phenoseg.training.instanseg.targets import seed_target


@dataclass
class Sample:
    """One annotated image at model resolution: normalised image, labels and seed targets per target.

    ``labels`` and ``seed`` are (T, H, W) (or (H, W) for a single target built by hand)."""

    dataset: str
    image_id: str
    image: np.ndarray  # (C, H, W) float32
    labels: np.ndarray  # (T, H, W) int32, −1 = unannotated
    seed: np.ndarray  # (T, H, W) float32

    def has_target(self, t: int) -> bool:
        """Whether target ``t`` is annotated anywhere in this sample."""
        return bool((self.labels[t] >= 0).any())


def seed_targets(labels: np.ndarray) -> np.ndarray:
    """:func:`seed_target` of every label map of a (T, H, W) stack."""
    return np.stack([seed_target(lab) for lab in labels]).astype(np.float32)


def load_split(
    root: str | Path,
    split: str,
    model_pixel_size: float,
    channels: int | None,
    data_pixel_size: float | None = None,
    targets: list[str] | tuple[str, ...] = ("nuclei",),
    max_images: int | None = None,
) -> list[Sample]:
    """Every image of ``split`` with ``channels`` channels (None: any) and labels for at least one of
    ``targets``, at the model's pixel size. Datasets without a recorded pixel size need ``data_pixel_size``."""
    root = Path(root)
    manifest = load_manifest(root)
    name = manifest.get("name", root.name)
    ids = [i for i, s in manifest["split"].items() if s == split]
    samples: list[Sample] = []
    for image_id in ids:
        if max_images is not None and len(samples) >= max_images:
            break
        px = image_pixel_size(manifest, image_id, data_pixel_size)
        if not px:
            raise PhenosegError(
                f"dataset {name} has no pixel size: pass data_pixel_size={name}=UM (µm per pixel)"
            )
        files = [label_file(root, t, image_id) for t in targets]
        if all(f is None for f in files):
            continue
        img = read_image(find_image_file(root, image_id))
        if channels is not None and img.data.shape[0] != channels:
            continue
        image = prepare(img.data, px, model_pixel_size).data
        maps = []
        for f in files:
            lab = read_labels(f).astype(np.int32) if f is not None else np.full(img.shape_yx, -1, np.int32)
            maps.append(resize_labels(lab, image.shape[-2:]))
        labels = np.stack(maps)
        samples.append(Sample(name, image_id, image.astype(np.float32), labels, seed_targets(labels)))
    return samples
