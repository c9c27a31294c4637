"""Datasets in the shared manifest layout (``manifest.json``, ``images/``, one label folder per target).

Foundation module: reads files only, knows nothing of models or training.
"""

from __future__ import annotations

import json
from pathlib import Path

from phenoseg.errors import PhenosegError

IMAGE_SUFFIXES = (".png", ".tif", ".jpg", ".jpeg", ".tiff")
# target → label folders to look in, first found wins (``labels/`` holds nuclei in nucleus datasets)
TARGET_LABEL_DIRS: dict[str, tuple[str, ...]] = {"nuclei": ("labels_nuclei", "labels"), "cells": ("labels_cells",)}


def find_image_file(root: Path, image_id: str) -> Path:
    """The image file of ``image_id`` in ``root/images`` (any supported suffix)."""
    for suffix in IMAGE_SUFFIXES:
        p = Path(root) / "images" / f"{image_id}{suffix}"
        if p.is_file():
            return p
    raise PhenosegError(f"{root}: no image file for '{image_id}' in images/")


def load_manifest(root: Path) -> dict:
    """Read and minimally check ``manifest.json``."""
    path = Path(root) / "manifest.json"
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


def label_file(root: Path, target: str, image_id: str) -> Path | None:
    """The label image of ``target`` for ``image_id``, or None when the dataset has none for it."""
    for folder in TARGET_LABEL_DIRS.get(target, (f"labels_{target}",)):
        p = Path(root) / folder / f"{image_id}.tif"
        if p.is_file():
            return p
    return None


def dataset_targets(root: Path) -> list[str]:
    """The targets a dataset has label folders for, in :data:`TARGET_LABEL_DIRS` order."""
    return [t for t, dirs in TARGET_LABEL_DIRS.items() if any((Path(root) / d).is_dir() for d in dirs)]
