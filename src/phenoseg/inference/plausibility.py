"""Results no one would believe, said so: missing (NaN) pixels kept out of the objects, blank fields, and
counts or sizes far from what the model saw in training (a wrong pixel size, modality or channel).

A model's ``object_stats`` (config.json) holds, per target, the 1st / 50th / 99th percentiles of its
training objects' areas (µm²) and of its training images' densities (objects per mm²); see
:func:`object_statistics`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.phenotype.table import ObjectTable

PIXEL_SIZE_RANGE = (0.05, 5.0)  # µm/px: from 100× oil (~0.06) to 2× (~3.2) objectives
MAX_UPSAMPLE = 4.0  # the model grid may be at most this many times finer than the input (linear)
MAGNIFICATIONS = {2: 3.2, 4: 1.6, 5: 1.3, 10: 0.65, 20: 0.5, 40: 0.25, 60: 0.11, 63: 0.1, 100: 0.065}
SIZE_MARGIN = 1.5  # a median area this factor beyond the training's 1st / 99th percentile is implausible
DENSITY_MARGIN = 2.0  # a density this factor above the training's 99th percentile is implausible


def missing_pixels(data: np.ndarray) -> np.ndarray | None:
    """(H, W) mask of pixels with a non-finite value in any channel, or None when every pixel is finite.
    An image with no finite pixel at all is refused."""
    if data.dtype.kind != "f":
        return None
    finite = np.isfinite(data).all(axis=0)
    if finite.all():
        return None
    if not finite.any():
        raise PhenosegError("the image has no finite pixel (all NaN or infinite)")
    return ~finite


def is_blank(data: np.ndarray, invalid: np.ndarray | None = None) -> bool:
    """Whether every (finite) pixel of every channel has one value: a blank field."""
    values = data[:, ~invalid] if invalid is not None else data.reshape(data.shape[0], -1)
    return bool(values.size == 0 or (values.min(axis=1) == values.max(axis=1)).all())


def check_pixel_size(pixel_size_um: float, model_pixel_size_um: float, shape_yx: tuple[int, int],
                     where: str = "image") -> None:
    """Refuse a pixel size no microscope gives, or one that would blow the image up more than 4× (linearly)
    at the model's resolution, with a hint (a magnification given instead of a pixel size is recognised)."""
    px = float(pixel_size_um)
    hint = "µm per pixel, e.g. 0.25 for a 40× scan, 0.5 for 20×, 0.65 for a 10× camera"
    if px in MAGNIFICATIONS:
        hint += f"; if {px:g} is the objective's magnification, the pixel size is ~{MAGNIFICATIONS[px]:g}"
    if not PIXEL_SIZE_RANGE[0] <= px <= PIXEL_SIZE_RANGE[1]:
        raise PhenosegError(f"{where}: pixel size {px:g} µm/px is outside the plausible range "
                            f"{PIXEL_SIZE_RANGE[0]:g}–{PIXEL_SIZE_RANGE[1]:g} ({hint})")
    factor = px / model_pixel_size_um
    if factor > MAX_UPSAMPLE:
        h, w = shape_yx
        mp = h * w * factor * factor / 1e6
        raise PhenosegError(f"{where}: at {px:g} µm/px the image would be enlarged {factor:.1f}× to "
                            f"{mp:.0f} megapixels for the model ({model_pixel_size_um:g} µm/px); check the pixel "
                            f"size ({hint})")


def work_estimate(shape_yx: tuple[int, int], factor: float, channels: int, targets: int) -> dict:
    """What segmenting an image in memory will take: megapixels at model resolution and peak memory (GB:
    the prepared image, the label maps at both resolutions and one network tile)."""
    h, w = shape_yx
    mp = h * w * factor * factor / 1e6
    gb = mp * (4 * channels + 8 * targets) / 1e3 + h * w * 8 * targets / 1e9 + 1.0
    return {"megapixels": mp, "memory_gb": gb}


def object_statistics(label_maps: Iterable[tuple[np.ndarray, float]]) -> dict:
    """Percentiles (1, 50, 99) of object areas (µm²) and of image densities (objects per mm²) over
    (label image, µm/px) pairs: what a model's training data looked like."""
    areas, densities = [], []
    for labels, px in label_maps:
        lab = np.asarray(labels)
        counts = np.bincount(lab[lab > 0].ravel())
        counts = counts[counts > 0]
        areas.append(counts * px * px)
        annotated = (lab >= 0).sum() * px * px / 1e6
        if annotated > 0:
            densities.append(counts.size / annotated)
    a = np.concatenate(areas) if areas else np.zeros(0)
    pct = (1, 50, 99)
    return {"area_um2": [round(float(v), 2) for v in np.percentile(a, pct)] if a.size else [],
            "objects_per_mm2": [round(float(v), 1) for v in np.percentile(densities, pct)] if densities else [],
            "n_objects": int(a.size), "n_images": len(densities)}


def plausibility_notes(tables: dict[str, ObjectTable], labels: dict[str, np.ndarray], pixel_size_um: float,
                       object_stats: dict, valid_pixels: int) -> list[str]:
    """One line per implausible result, with its likely cause."""
    notes = []
    for target, table in tables.items():
        if len(table) == 0:
            notes.append(f"0 {target} found on a non-blank image: is it the right model for this image (modality, "
                         "channel) and the right pixel size?")
            continue
        stats = object_stats.get(target) or {}
        area = stats.get("area_um2") or []
        if len(area) == 3:
            lab = labels[target]
            median = float(np.median(np.bincount(lab.ravel())[table.ids])) * pixel_size_um ** 2
            if median > area[2] * SIZE_MARGIN or median < area[0] / SIZE_MARGIN:
                size = "large" if median > area[2] else "small"
                notes.append(f"{target} are unusually {size} (median {median:.3g} µm²; the model's training objects: "
                             f"{area[0]:.3g}–{area[2]:.3g} µm²): is the pixel size ({pixel_size_um:g} µm/px) right?")
        dens = stats.get("objects_per_mm2") or []
        mm2 = valid_pixels * pixel_size_um ** 2 / 1e6
        if len(dens) == 3 and mm2 > 0 and len(table) >= 20:
            density = len(table) / mm2
            if density > dens[2] * DENSITY_MARGIN:
                notes.append(f"{density:.0f} {target} per mm² is far above the model's training range (up to "
                             f"{dens[2]:.0f}): objects may be split; check the pixel size ({pixel_size_um:g} µm/px) "
                             "and the model")
    return notes
