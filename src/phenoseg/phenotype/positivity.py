"""Marker positivity of every cell for every channel (method §4): the per-object pass of a positivity model.

For each marker channel: the channel scaled between percentiles of its pixels inside cells, brought to the
model's pixel size once, every cell's crop (marker + the cell's mask) embedded in batches (only the
embeddings are kept), then the ISAB over all cells of that marker in the image → a probability per cell.
Columns ``<channel>_positive_probability`` and ``<channel>_positive`` (0/1 at the threshold); the derived
class names the markers a cell is positive for, as QuPath's composite classifiers do (``CD3+: CD8-``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from phenoseg.errors import PhenosegError
from phenoseg.phenotype.crops import gather_crops, to_pixel_size

BATCH = 1024  # crops per encoder batch


def scale_marker(channel: np.ndarray, cells: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """(Y, X) marker channel → float32 about [0, 1] between the percentiles of its pixels inside cells."""
    x = np.nan_to_num(channel.astype(np.float32))
    inside = x[cells > 0]
    ref = inside if inside.size >= 16 else x.ravel()
    lo, hi = np.percentile(ref, [percentiles[0], percentiles[1]])
    return ((x - lo) / max(float(hi - lo), 1e-6)).astype(np.float32)


class PositivityPredictor:
    """A positivity model ready to score cells: ``predict(image, cells, px, channels)`` → (N, markers)."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.model = model.eval()
        self.config = model.config
        self.device = torch.device(device)

    @torch.no_grad()
    def embeddings(self, channel: np.ndarray, cells: np.ndarray, ids: np.ndarray, cy: np.ndarray, cx: np.ndarray,
                   pixel_size_um: float) -> torch.Tensor:
        """(N, D) embeddings of the cells ``ids`` for one marker channel (crops made a batch at a time)."""
        cfg = self.config
        scaled = scale_marker(channel, cells, cfg.normalise_percentiles)[None]
        img, lab, f = to_pixel_size(scaled, cells, pixel_size_um, cfg.pixel_size_um)
        ty, tx = (cy + 0.5) * f - 0.5, (cx + 0.5) * f - 0.5
        out = torch.zeros(len(ids), cfg.embed_dim)
        for s in range(0, len(ids), BATCH):
            crops = gather_crops(img, lab, ids[s:s + BATCH], ty[s:s + BATCH], tx[s:s + BATCH], cfg.crop_px, ["object"])
            x = torch.from_numpy(crops).to(self.device).contiguous(memory_format=torch.channels_last)
            out[s:s + BATCH] = self.model.embed(x).float().cpu()
        return out

    @torch.no_grad()
    def probabilities(self, embeddings: torch.Tensor) -> np.ndarray:
        """Probabilities of one set (one marker over all cells of an image or slide)."""
        if embeddings.shape[0] == 0:
            return np.zeros(0, np.float32)
        return torch.sigmoid(self.model.set_logits(embeddings.to(self.device))).float().cpu().numpy()

    def predict(self, image: np.ndarray, cells: np.ndarray, pixel_size_um: float | None,
                channels: Sequence[int], ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N,), probabilities (N, len(channels))) of the cells of ``cells`` on ``image`` (C, Y, X)."""
        from phenoseg.phenotype.table import object_centroids

        area, cy, cx = object_centroids(cells)
        if ids is None:
            ids = np.flatnonzero(area > 0)
            ids = ids[ids > 0]
        ids = np.asarray(ids, np.int64)
        px = pixel_size_um or self.config.pixel_size_um
        probs = np.zeros((len(ids), len(channels)), np.float32)
        for j, c in enumerate(channels):
            probs[:, j] = self.probabilities(self.embeddings(image[c], cells, ids, cy[ids], cx[ids], px))
        return ids, probs


def composite_class(positive: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(N, markers) 0/1 → QuPath composite class names, e.g. ``CD3+: CD8-``."""
    parts = [np.where(positive[:, j] > 0, f"{n}+", f"{n}-") for j, n in enumerate(names)]
    if not parts:
        return np.zeros(0, object)
    out = parts[0].astype(object)
    for p in parts[1:]:
        out = out + ": " + p
    return out


@dataclass
class PositivityPass:
    """The per-object pass: adds, for each marker channel, ``<channel>_positive_probability`` and
    ``<channel>_positive``; without a classifier's class, ``class`` becomes the composite name."""

    predictor: PositivityPredictor
    channels: list[int] | None = None  # image channels to score (None: every channel)
    threshold: float | None = None
    name: str = "positivity"
    needs_all_objects: bool = True  # the ISAB's set is every cell of the image

    def __call__(self, table, context) -> None:
        names = list(context.channel_names)
        chans = self.channels if self.channels is not None else list(range(len(names)))
        labels = context.labels.get("cells", context.labels[table.target])
        ids, probs = self.predictor.predict(context.image, labels, context.pixel_size_um, chans, table.ids)
        t = self.threshold if self.threshold is not None else self.predictor.config.threshold
        positive = (probs >= t).astype(np.int8)
        for j, c in enumerate(chans):
            table.add_column(f"{names[c]}_positive_probability", probs[:, j].astype(np.float64))
            table.add_column(f"{names[c]}_positive", positive[:, j])
        if "class" not in table.columns:
            from phenoseg.models.classifier import class_colour

            classes = composite_class(positive, [names[c] for c in chans])
            table.add_column("class", classes)
            uniq = sorted(set(classes.tolist()))
            table.classes = (uniq, [class_colour(n, i) for i, n in enumerate(uniq)])


BUNDLED = "marker_positivity"


@lru_cache(maxsize=2)
def load_positivity(name: str = BUNDLED, device: str = "cpu") -> PositivityPredictor:
    """A :class:`PositivityPredictor` of a model (bundled name or folder), loaded once per process."""
    from phenoseg.devices import pick_device
    from phenoseg.models.zoo import load_model

    dev = pick_device(device)
    model = load_model(BUNDLED if name in ("auto", "") else name, dev)
    if getattr(model.config, "kind", "") != "positivity":
        raise PhenosegError(f"positivity=: '{name}' is not a positivity model")
    return PositivityPredictor(model, dev)
