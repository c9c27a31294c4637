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
from phenoseg.inference.onnx_backend import OnnxModule, onnxruntime_available
from phenoseg.phenotype.crops import to_pixel_size

BATCH = 256  # crops per encoder batch (ONNX Runtime is fastest near this size on 2 cores)
ONNX_MIN_CROPS = 2000  # backend auto: ONNX Runtime (~10x faster here) once this many crops repay its export


def scale_marker(channel: np.ndarray, cells: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """(Y, X) marker channel → float32 about [0, 1] between the percentiles of its pixels inside cells."""
    x = np.nan_to_num(channel.astype(np.float32))
    inside = x[cells > 0]
    ref = inside if inside.size >= 16 else x.ravel()
    lo, hi = np.percentile(ref, [percentiles[0], percentiles[1]])
    return ((x - lo) / max(float(hi - lo), 1e-6)).astype(np.float32)


class _Embed(torch.nn.Module):
    """The encoder alone (what ONNX Runtime runs)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(x)


def crop_geometry(labels: np.ndarray, ids: np.ndarray, cy: np.ndarray, cx: np.ndarray, size: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row index (N, S, 1), column index (N, 1, S), inside (N, S, S), own mask (N, S, S)) of crops of
    ``size`` centred on the cells: computed once, then every marker channel is a gather."""
    h, w = labels.shape
    half = size // 2
    rows = np.rint(np.asarray(cy)).astype(np.int64)[:, None] - half + np.arange(size)
    cols = np.rint(np.asarray(cx)).astype(np.int64)[:, None] - half + np.arange(size)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    yi, xi = np.clip(rows, 0, h - 1)[:, :, None], np.clip(cols, 0, w - 1)[:, None, :]
    own = inside & (labels[yi, xi] == np.asarray(ids)[:, None, None])
    return yi, xi, inside, own


class PositivityPredictor:
    """A positivity model ready to score cells: ``predict(image, cells, px, channels)`` → (ids, (N, markers)).

    ``backend``: torch, onnx (ONNX Runtime on the CPU) or auto (ONNX Runtime on the CPU once an image has
    ``ONNX_MIN_CROPS`` crops to embed, where installed)."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", backend: str = "auto") -> None:
        if backend not in ("torch", "onnx", "auto"):
            raise PhenosegError(f"backend='{backend}': expected torch, onnx or auto")
        self.model = model.eval()
        self.config = model.config
        self.device = torch.device(device)
        self.backend = "torch"
        self._embed = self.model.embed
        self._onnx_ok = backend == "onnx" or (backend == "auto" and self.device.type == "cpu"
                                              and onnxruntime_available())
        if backend == "onnx":
            self.use_fast_runtime()

    def use_fast_runtime(self) -> None:
        """Run the encoder under ONNX Runtime (embeddings equal to ~1e-5; the export is cached on disk)."""
        if not self._onnx_ok or self.backend == "onnx":
            return
        s = self.config.crop_px
        self._embed = OnnxModule(_Embed(self.model.float()), torch.zeros(2, 2, s, s), {0: "b"})
        self.backend = "onnx"

    @torch.no_grad()
    def embed(self, crops: np.ndarray) -> torch.Tensor:
        """(N, 2, S, S) crops → (N, D) embeddings."""
        x = torch.from_numpy(crops).to(self.device)
        if self.backend == "torch":
            x = x.contiguous(memory_format=torch.channels_last)
        return self._embed(x).float().cpu()

    def embeddings(self, image: np.ndarray, cells: np.ndarray, ids: np.ndarray, cy: np.ndarray, cx: np.ndarray,
                   pixel_size_um: float, channels: Sequence[int]) -> torch.Tensor:
        """(markers, N, D) embeddings of the cells ``ids`` for each channel of ``image`` (C, Y, X) in
        ``channels``: channels scaled and brought to the model's grid once, crops made a batch at a time."""
        cfg = self.config
        scaled = np.stack([scale_marker(image[c], cells, cfg.normalise_percentiles) for c in channels])
        img, lab, f = to_pixel_size(scaled, cells, pixel_size_um, cfg.pixel_size_um)
        ty, tx = (cy + 0.5) * f - 0.5, (cx + 0.5) * f - 0.5
        if len(ids) * len(channels) >= ONNX_MIN_CROPS:
            self.use_fast_runtime()
        out = torch.zeros(len(channels), len(ids), cfg.embed_dim)
        crops = np.empty((min(BATCH, len(ids)), 2, cfg.crop_px, cfg.crop_px), np.float32)
        for s in range(0, len(ids), BATCH):
            sl = slice(s, s + BATCH)
            yi, xi, inside, own = crop_geometry(lab, ids[sl], ty[sl], tx[sl], cfg.crop_px)
            n = len(yi)
            crops[:n, 1] = own
            for j in range(len(channels)):
                crops[:n, 0] = np.where(inside, img[j][yi, xi], 0.0)
                out[j, s:s + n] = self.embed(crops[:n])
        return out

    @torch.no_grad()
    def probabilities(self, embeddings: torch.Tensor) -> np.ndarray:
        """Probabilities of one set (one marker over all cells of an image or slide)."""
        if embeddings.shape[0] == 0:
            return np.zeros(0, np.float32)
        return torch.sigmoid(self.model.set_logits(embeddings.to(self.device))).float().cpu().numpy()

    def predict(self, image: np.ndarray, cells: np.ndarray, pixel_size_um: float | None,
                channels: Sequence[int], ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N,), probabilities (N, len(channels))) of the cells of ``cells`` on ``image`` (C, Y, X); an id
        without pixels gets NaN."""
        from phenoseg.phenotype.table import object_centroids

        area, cy, cx = object_centroids(cells)
        if ids is None:
            ids = np.flatnonzero(area > 0)
            ids = ids[ids > 0]
        ids = np.asarray(ids, np.int64)
        ok = (ids > 0) & (ids < len(area))
        ok[ok] = area[ids[ok]] > 0
        px = pixel_size_um or self.config.pixel_size_um
        probs = np.full((len(ids), len(channels)), np.nan, np.float32)
        if ok.any() and len(channels):
            emb = self.embeddings(image, cells, ids[ok], cy[ids[ok]], cx[ids[ok]], px, list(channels))
            for j in range(len(channels)):
                probs[ok, j] = self.probabilities(emb[j])
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
    ``<channel>_positive`` (QuPath measurements ``<channel>: Positive probability`` / ``<channel>: Positive``);
    without a classifier's class, ``class`` becomes the composite name. A cell without pixels gets NaN and 0."""

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
            table.measurement_names[f"{names[c]}_positive_probability"] = f"{names[c]}: Positive probability"
            table.measurement_names[f"{names[c]}_positive"] = f"{names[c]}: Positive"
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
