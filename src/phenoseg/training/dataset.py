"""Datasets in the shared manifest layout, resampled to a model's pixel size and held in memory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.inference.preprocess import percentile_normalise, resample_image, resize_labels
from phenoseg.io.images import read_image
from phenoseg.io.labels import read_labels
from phenoseg.training.targets import seed_target


@dataclass
class Sample:
    """One annotated image at model resolution: normalised image, labels, seed target."""

    dataset: str
    image_id: str
    image: np.ndarray  # (C, H, W) float32
    labels: np.ndarray  # (H, W) int32, −1 = unannotated
    seed: np.ndarray  # (H, W) float32


def find_image_file(root: Path, image_id: str) -> Path:
    """The image file of ``image_id`` in ``root/images`` (any supported suffix)."""
    for suffix in (".png", ".tif", ".jpg", ".jpeg", ".tiff"):
        p = root / "images" / f"{image_id}{suffix}"
        if p.is_file():
            return p
    raise PhenosegError(f"{root}: no image file for '{image_id}' in images/")


def load_manifest(root: Path) -> dict:
    """Read and minimally check ``manifest.json``."""
    path = root / "manifest.json"
    if not path.is_file():
        raise PhenosegError(f"{root}: not a dataset folder (no manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise PhenosegError(f"{path}: invalid JSON ({exc})") from exc
    if "split" not in manifest:
        raise PhenosegError(f"{path}: manifest has no 'split'")
    return manifest


def image_pixel_size(manifest: dict, image_id: str, override: float | None) -> float | None:
    """Override, else the per-image value, else the dataset value (None when unknown)."""
    if override:
        return override
    meta = manifest.get("images", {}).get(image_id, {})
    return meta.get("pixel_size_um") or manifest.get("pixel_size_um")


def load_split(
    root: str | Path,
    split: str,
    model_pixel_size: float,
    channels: int,
    data_pixel_size: float | None = None,
    label_dir: str = "labels",
    max_images: int | None = None,
) -> list[Sample]:
    """Load every image of ``split`` whose channel count matches ``channels``, at the model's pixel size.

    Datasets without a recorded pixel size need ``data_pixel_size`` (a clear error otherwise).
    """
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
                f"dataset {name} has no pixel size: pass --data-pixel-size {name}=UM (µm per pixel)"
            )
        img = read_image(find_image_file(root, image_id))
        if img.data.shape[0] != channels:
            continue
        lab_path = root / label_dir / f"{image_id}.tif"
        if not lab_path.is_file():
            continue
        labels = read_labels(lab_path).astype(np.int32)
        factor = px / model_pixel_size
        image = resample_image(percentile_normalise(img.data), factor)
        labels = resize_labels(labels, image.shape[-2:])
        samples.append(Sample(name, image_id, image.astype(np.float32), labels, seed_target(labels)))
    return samples
