"""The Segmenter: image (any grid) → normalise → resample to the model → network → postprocess → labels."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from phenoseg.devices import pick_device
from phenoseg.errors import PhenosegError
from phenoseg.inference.onnx_backend import OnnxNetwork, onnxruntime_available
from phenoseg.inference.optimise import frozen_network
from phenoseg.inference.runner import build_decoder, network_output
from phenoseg.inference.tiling import segment_tiled, torch_tile_segmenter
from phenoseg.inference.tta import TRANSFORMS, apply, frame_matrix, undo_output
from phenoseg.io.images import Image, read_image
from phenoseg.models.instanseg import InstanSegNet
from phenoseg.models.zoo import bundled_model_dirs, load_model
from phenoseg.preprocess import percentile_normalise_tensor, resample_image, upsample_labels

AUTO_MODELS = {3: "brightfield_nuclei", 1: "fluorescence_nuclei"}
FREEZE_MIN_PIXELS = 768 * 768  # below this, building the frozen graph costs more than it saves
AUTO_TILE = 2048  # images larger than this (at model resolution) are processed in tiles of this size


@dataclass
class SegmentationResult:
    """Labels per target (uint32, the input's height and width), per-object scores and timings."""

    labels: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    model: str
    pixel_size_um: float
    timings: dict[str, float] = field(default_factory=dict)


def choose_model_name(n_channels: int) -> str:
    """The bundled model for an image with ``n_channels`` channels (RGB → brightfield, 1 → fluorescence)."""
    name = AUTO_MODELS.get(n_channels)
    if name is None or name not in bundled_model_dirs():
        raise PhenosegError(
            f"no bundled model fits a {n_channels}-channel image; pass --model NAME_OR_DIR "
            f"(bundled: {', '.join(bundled_model_dirs()) or 'none'})"
        )
    return name


class Segmenter:
    """Segment nuclei (and cells, for cell models) in 2D images.

    >>> seg = Segmenter("brightfield_nuclei")                     # doctest: +SKIP
    >>> result = seg.segment("he.tif")                            # doctest: +SKIP
    >>> result.labels["nuclei"].max()                             # doctest: +SKIP
    """

    def __init__(self, model: str | os.PathLike | InstanSegNet = "auto", device: str = "auto",
                 seed_threshold: float | None = None, mask_threshold: float | None = None,
                 min_area_px: int | None = None, tta: bool = False, backend: str = "torch",
                 tile_size: int | None = None, overlap: int = 80, progress: bool = False) -> None:
        self.device = pick_device(device)
        self.tta = tta
        self.tile_size = tile_size
        self.overlap = overlap
        self.progress = progress
        if backend not in ("torch", "onnx", "auto"):
            raise PhenosegError(f"unknown backend '{backend}' (torch, onnx or auto)")
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" and onnxruntime_available() else "torch"
        self.backend = backend
        self._model_arg = model
        self._cache: dict[str, InstanSegNet] = {}
        self._frozen: dict[int, object] = {}
        self.thresholds = {"seed_threshold": seed_threshold, "mask_threshold": mask_threshold,
                           "min_area": min_area_px}

    def model_for(self, n_channels: int) -> InstanSegNet:
        """The network used for an image with ``n_channels`` channels (loaded once, then cached)."""
        if isinstance(self._model_arg, InstanSegNet):
            net = self._model_arg.to(self.device).eval()
        else:
            name = str(self._model_arg)
            if name == "auto":
                name = choose_model_name(n_channels)
            if name not in self._cache:
                self._cache[name] = load_model(name, self.device)
            net = self._cache[name]
        if net.config.in_channels != n_channels:
            raise PhenosegError(
                f"model '{net.config.name}' expects {net.config.in_channels} channel(s), the image has {n_channels}"
            )
        return net

    def _runner(self, net: InstanSegNet, n_pixels: int):
        """A faster equivalent of ``net`` on the CPU (built once): ONNX Runtime with the onnx backend, else
        a frozen channels-last TorchScript copy for large images. None means: use ``net`` itself."""
        if self.device.type != "cpu":
            return None
        key = id(net)
        if self.backend == "onnx":
            if key not in self._frozen:
                self._frozen[key] = OnnxNetwork(net)
            return self._frozen[key]
        if n_pixels < FREEZE_MIN_PIXELS:
            return None
        if key not in self._frozen:
            self._frozen[key] = frozen_network(net)
        return self._frozen[key]

    def segment(
        self, image: Image | np.ndarray | str | os.PathLike, pixel_size_um: float | None = None
    ) -> SegmentationResult:
        """Segment one image. ``image``: a path, an :class:`Image`, or an array (Y, X) / (C, Y, X).

        The pixel size comes from ``pixel_size_um``, else from the image's metadata; without either,
        a :class:`PhenosegError` explains how to give it.
        """
        t0 = time.perf_counter()
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)
        if isinstance(image, np.ndarray):
            arr = image[None] if image.ndim == 2 else image
            image = Image(data=arr)
        timings = {"read_s": time.perf_counter() - t0}
        px = pixel_size_um or image.pixel_size_um
        net = self.model_for(image.data.shape[0])
        cfg = net.config
        if not px:
            raise PhenosegError(
                f"{image.path or 'image'}: no pixel size in its metadata; pass --pixel-size UM "
                f"(µm per pixel, e.g. 0.25 for a 40x scan, 0.5 for 20x; the model works at {cfg.pixel_size_um})"
            )
        t1 = time.perf_counter()
        lo, hi = cfg.norm_percentiles
        normalised = percentile_normalise_tensor(torch.from_numpy(image.data.astype(np.float32)), lo, hi)
        data = resample_image(normalised.numpy(), px / cfg.pixel_size_um)
        if min(data.shape[-2:]) < 8:
            raise PhenosegError(f"{image.path or 'image'}: too small at the model's pixel size ({data.shape[-2:]})")
        t2 = time.perf_counter()
        runner = self._runner(net, data.shape[-2] * data.shape[-1])
        thresholds = {k: v for k, v in self.thresholds.items() if v is not None}
        tile = self.tile_size or (AUTO_TILE if max(data.shape[-2:]) > AUTO_TILE + self.overlap else None)
        if tile:  # tiles on the network's stride grid see exactly the features of an untiled run
            tile = -(-tile // net.stride) * net.stride
        if tile and len(cfg.targets) == 1 and not self.tta:
            run_tile = torch_tile_segmenter(net, build_decoder(net), self.device, runner, thresholds)
            bar = None
            if self.progress:
                from tqdm import tqdm

                bar = tqdm(desc=image.path or "tiles", unit="tile", leave=False)

            def advance(done: int, total: int) -> None:
                if bar is not None:
                    bar.total = total
                    bar.update(done - bar.n)

            labels_np, scores_np = segment_tiled(data, run_tile, tile, self.overlap, advance)
            if bar is not None:
                bar.close()
            t3 = time.perf_counter()
            target = cfg.targets[0]
            out_labels = {target: upsample_labels(labels_np, image.shape_yx).astype(np.uint32)}
            timings.update(preprocess_s=t2 - t1, network_and_postprocess_s=t3 - t2,
                           resize_s=time.perf_counter() - t3, total_s=time.perf_counter() - t0, tiles=tile)
            return SegmentationResult(out_labels, {target: scores_np}, cfg.name, float(px), timings)
        if self.tta:
            x = torch.from_numpy(np.ascontiguousarray(data))
            raws = [undo_output(network_output(net, apply(x, k, flip), self.device, runner), k, flip)
                    for k, flip in TRANSFORMS]
        else:
            raw = network_output(net, data, self.device, runner)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t3 = time.perf_counter()
        decoder = build_decoder(net)
        if self.tta:
            frames = [frame_matrix(k, flip) for k, flip in TRANSFORMS]
            labels, scores = decoder.decode_tta(raws, frames, **thresholds)
        else:
            labels, scores = decoder.decode(raw, **thresholds)
        t4 = time.perf_counter()
        shape = image.shape_yx
        out_labels = {}
        out_scores = {}
        for i, target in enumerate(cfg.targets):
            out_labels[target] = upsample_labels(labels[0, i].cpu().numpy(), shape).astype(np.uint32)
            out_scores[target] = scores[0][i].cpu().numpy()
        timings.update(preprocess_s=t2 - t1, network_s=t3 - t2, postprocess_s=t4 - t3,
                       resize_s=time.perf_counter() - t4, total_s=time.perf_counter() - t0)
        return SegmentationResult(out_labels, out_scores, cfg.name, float(px), timings)
