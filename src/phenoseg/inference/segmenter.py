"""The Segmenter: image (any grid, any common array layout) → prepare → network (tiled when large, TTA when
asked) → postprocess → labels per target on the input's grid, with one object table per target."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from phenoseg.devices import pick_device
from phenoseg.errors import PhenosegError
from phenoseg.inference.choice import MULTIPLEX, choose, fit
from phenoseg.inference.onnx_backend import OnnxNetwork, onnxruntime_available
from phenoseg.inference.optimise import frozen_network
from phenoseg.inference.plausibility import (
    check_pixel_size,
    is_blank,
    missing_pixels,
    plausibility_notes,
    work_estimate,
)
from phenoseg.inference.runner import build_decoder, network_output
from phenoseg.inference.tiling import TileFunction, channel_scaled_tile, segment_tiled
from phenoseg.inference.tta import TRANSFORMS, apply, frame_matrix, undo_output
from phenoseg.io.channels import image_from_array, select_channels
from phenoseg.io.images import Image, read_image
from phenoseg.models.instanseg import InstanSegNet
from phenoseg.models.zoo import bundled_model_dirs, load_model
from phenoseg.phenotype.table import ObjectTable, object_table
from phenoseg.postprocess.fragments import keep_largest_parts
from phenoseg.postprocess.pairing import contain_nuclei_np, paired_targets, renumber_objects
from phenoseg.preprocess import prepare, upsample_labels

AUTO_MODELS = {3: "brightfield_nuclei", 1: "fluorescence_nuclei"}
FREEZE_MIN_PIXELS = 768 * 768  # below this, building the frozen graph costs more than it saves
AUTO_TILE = 2048  # images larger than this (at model resolution) are processed in tiles of this size
# nucleus models on the CPU tile in-memory images at this size: the same labels, peak RSS on a 2048² H&E
# 2.2 → 1.0 GB (with ONNX Runtime's arena off) for ~9 % more time (interleaved, median of 5)
MEMORY_TILE = 1024
BACKENDS = ("torch", "onnx", "auto")


@dataclass
class SegmentationResult:
    """Labels per target (uint32, the input's height and width), per-object scores and tables, timings.

    ``scores[target][i]`` is the seed score of label i + 1; ``tables[target]`` describes every object."""

    labels: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    model: str
    pixel_size_um: float
    timings: dict[str, float] = field(default_factory=dict)
    tables: dict[str, ObjectTable] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what looks implausible (or was missing), one line each
    choice: str = ""  # how the model / channels were chosen for this image ("" when the image fit as it was)


def choose_model_name(n_channels: int) -> str:
    """The bundled model for an image with ``n_channels`` channels once they are chosen (3 → brightfield,
    1 → fluorescence nuclei, 2 or more others → fluorescence nuclei and cells)."""
    name = AUTO_MODELS.get(n_channels, MULTIPLEX if n_channels >= 2 else None)
    if name is None or name not in bundled_model_dirs():
        raise PhenosegError(
            f"no bundled model fits a {n_channels}-channel image; pass model= a model name or folder "
            f"(bundled: {', '.join(bundled_model_dirs()) or 'none'})"
        )
    return name


def machine_memory_gb() -> float:
    """This machine's physical memory (GB; infinite where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return float("inf")


def thresholds_dict(seed_threshold: float | None = None, mask_threshold: float | None = None,
                    min_area: int | None = None) -> dict:
    """The per-call postprocessing overrides that are set (None means: the model's own)."""
    given = {"seed_threshold": seed_threshold, "mask_threshold": mask_threshold, "min_area": min_area}
    return {k: v for k, v in given.items() if v is not None}


def to_image(image: Image | np.ndarray | str | os.PathLike, axes: str | None = None,
             channels: str | Sequence[str | int] | None = None) -> Image:
    """A path, an :class:`Image` or an array (see :func:`phenoseg.io.channels.as_cyx`) as an Image with the
    chosen channels."""
    if isinstance(image, (str, os.PathLike)):
        image = read_image(image, axes)
    elif isinstance(image, np.ndarray):
        image = image_from_array(image, axes)
    elif not isinstance(image, Image):
        raise PhenosegError(f"image=: expected a path, an Image or a numpy array, got {type(image).__name__}")
    return select_channels(image, channels)


class Segmenter:
    """Segment nuclei (and cells, for cell models) in 2D images.

    >>> seg = Segmenter("brightfield_nuclei")                     # doctest: +SKIP
    >>> result = seg.segment("he.tif", seed_threshold=0.5)        # doctest: +SKIP
    >>> result.labels["nuclei"].max()                             # doctest: +SKIP

    ``model``: a bundled model's name, a model folder, a loaded network, or "auto" (chosen per image by its
    channel count). ``backend``: the CPU runtime of the network: auto (the default: ONNX Runtime, ~2.6× faster
    with the same labels, torch for a ChannelNet model, where torch is faster, and on GPUs), torch or onnx.
    ``tta``: test-time augmentation (8 flips / rotations). ``subpixel``: on inputs finer than the model's
    grid, outlines follow the network's membership probabilities between model pixels (else a bilinear vote
    of the labels).
    """

    def __init__(self, model: str | os.PathLike | InstanSegNet = "auto", *, device: str = "auto",
                 backend: str = "auto", tta: bool = False, overlap: int = 80, subpixel: bool = True) -> None:
        self.device = pick_device(device)
        self.tta = tta
        self.subpixel = subpixel
        self.outline_level: float | None = None  # overrides the model's outline_threshold (tuning)
        self.overlap = overlap
        if backend not in BACKENDS:
            raise PhenosegError(f"backend='{backend}': expected torch, onnx or auto")
        self.backend_arg = backend  # as asked (workers of a slide get the same choice)
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" and onnxruntime_available() else "torch"
        self.backend = backend
        self.model_arg = model
        self._cache: dict[str, InstanSegNet] = {}
        self._fast: dict[int, object] = {}

    def load(self, name: str | os.PathLike | InstanSegNet) -> InstanSegNet:
        """A network by name or folder (loaded once, then cached)."""
        if isinstance(name, InstanSegNet):
            return name.to(self.device).eval()
        key = str(name)
        if key not in self._cache:
            self._cache[key] = load_model(key, self.device)
        return self._cache[key]

    def model_for(self, n_channels: int) -> InstanSegNet:
        """The network used for an image with ``n_channels`` channels once its channels are chosen (with
        "auto": 3 → brightfield, 1 → fluorescence)."""
        auto = not isinstance(self.model_arg, InstanSegNet) and str(self.model_arg) == "auto"
        net = self.load(choose_model_name(n_channels) if auto else self.model_arg)
        if not net.config.accepts(n_channels):
            raise PhenosegError(
                f"model '{net.config.name}' expects {net.config.in_channels} channel(s), the image has {n_channels}"
            )
        return net

    def choose_channels(self, names: list[str], data: np.ndarray, rgb: bool
                        ) -> tuple[InstanSegNet, list[int] | None, str]:
        """The network for an image with these channels (``data``: the image or its thumbnail), the channel
        indices it reads (None: all) and how they were chosen (one line; "" when the image fit as it was).
        See :mod:`phenoseg.inference.choice`."""
        if not isinstance(self.model_arg, InstanSegNet) and str(self.model_arg) == "auto":
            c = choose(names, data, rgb, bundled_model_dirs())
            return self.load(c.model), c.channels, f"model '{c.model}': {c.reason}"
        net = self.load(self.model_arg)
        cfg = net.config
        c = fit(names, data, rgb, cfg.in_channels, cfg.name, cfg.accepts(len(names)))
        return net, c.channels, c.reason

    def fit_image(self, image: Image) -> tuple[InstanSegNet, Image, str]:
        """The network for ``image``, the image with the channels it reads, and how they were chosen."""
        net, channels, reason = self.choose_channels(image.channel_names, image.data, image.rgb)
        return net, (select_channels(image, channels) if channels is not None else image), reason

    def model_pixel_size(self, n_channels: int) -> float:
        """The µm/px the network for an ``n_channels`` image works at (with "auto": the finest bundled one)."""
        if not isinstance(self.model_arg, InstanSegNet) and str(self.model_arg) == "auto":
            from phenoseg.models.zoo import read_config

            return min(read_config(d).pixel_size_um for d in bundled_model_dirs().values())
        return self.load(self.model_arg).config.pixel_size_um

    def runtime(self, net: InstanSegNet, n_pixels: int):
        """A faster equivalent of ``net`` on the CPU (built once): ONNX Runtime with the onnx backend, else
        a frozen channels-last TorchScript copy for large inputs. None means: use ``net`` itself."""
        if self.device.type != "cpu":
            return None
        key = id(net)
        # auto: ONNX Runtime for the nucleus models (~3× torch), torch for ChannelNet (a 1024² 20-channel image
        # 9.7 s vs 13.1 s, and a fraction of ONNX Runtime's memory on big tiles with many channels)
        auto_torch = self.backend_arg == "auto" and net.config.adaptor is not None
        if self.backend == "onnx" and not auto_torch:
            if key not in self._fast:
                self._fast[key] = OnnxNetwork(net)
            return self._fast[key]
        if n_pixels < FREEZE_MIN_PIXELS:
            return None
        if key not in self._fast:
            self._fast[key] = frozen_network(net)
        return self._fast[key]

    def tile_function(self, net: InstanSegNet, thresholds: dict, n_pixels: int,
                      timings: dict | None = None, strength: bool = False) -> TileFunction:
        """normalised (C, h, w) at model resolution → (labels (T, h, w), [scores per target]): network
        (with TTA when set) and postprocessing. The one function behind untiled, tiled and slide runs.
        With ``strength`` a third item: each pixel's membership probability (T, h, w), for outlines on a
        finer grid."""
        runner = self.runtime(net, n_pixels)
        decoder = build_decoder(net)
        pair = paired_targets(net.config.targets)
        timings = timings if timings is not None else {}

        def run(crop: np.ndarray) -> tuple:
            t0 = time.perf_counter()
            if self.tta:
                x = torch.from_numpy(np.ascontiguousarray(crop))
                raws = [undo_output(network_output(net, apply(x, k, flip), self.device, runner), k, flip)
                        for k, flip in TRANSFORMS]
            else:
                raw = network_output(net, crop, self.device, runner)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            with torch.no_grad():
                if self.tta:
                    frames = [frame_matrix(k, f) for k, f in TRANSFORMS]
                    labels, scores, soft = decoder.decode_tta_strength(raws, frames, **thresholds)
                else:
                    labels, scores, soft = decoder.decode_strength(raw, **thresholds)
            lab = np.stack([keep_largest_parts(x) for x in labels[0].cpu().numpy()])  # one piece per object
            if pair:
                lab[pair[0]], lab[pair[1]] = contain_nuclei_np(lab[pair[0]], lab[pair[1]])
            out = lab, [s.cpu().numpy() for s in scores[0]]
            if strength:
                out = (*out, soft[0].float().cpu().numpy())
            timings["network_s"] = timings.get("network_s", 0.0) + t1 - t0
            timings["postprocess_s"] = timings.get("postprocess_s", 0.0) + time.perf_counter() - t1
            return out

        return run

    def blank_result(self, image: Image, cfg, px: float, t0: float, choice: str = "") -> SegmentationResult:
        """0 objects for a blank (constant) field, without running the network."""
        empty = np.zeros(image.shape_yx, np.uint32)
        labels = {t: empty.copy() for t in cfg.targets}
        scores = {t: np.zeros(0, np.float32) for t in cfg.targets}
        tables = {t: object_table(labels[t], t, scores[t]) for t in cfg.targets}
        return SegmentationResult(labels, scores, cfg.name, px, {"total_s": time.perf_counter() - t0}, tables,
                                  ["blank field (every pixel has one value): 0 objects"], choice)

    def segment(
        self,
        image: Image | np.ndarray | str | os.PathLike,
        pixel_size_um: float | None = None,
        *,
        axes: str | None = None,
        channels: str | Sequence[str | int] | None = None,
        seed_threshold: float | None = None,
        mask_threshold: float | None = None,
        min_area: int | None = None,
        tile_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> SegmentationResult:
        """Segment one image.

        ``image``: a path, an :class:`Image`, or an array (Y, X), (C, Y, X) or (Y, X, C) (``axes="YXC"``;
        an RGB(A) array whose last axis is 3 or 4 is recognised without it). ``channels``: names or indices
        to use, in order. The pixel size is ``pixel_size_um`` when given, else the image's metadata;
        without either a :class:`PhenosegError` says how to give it. Thresholds override the model's for
        this call (``min_area`` in px at model resolution). Images larger than 2048 px at the model's
        resolution are tiled (``tile_size`` forces a tile size). ``progress(done, total)`` is called after
        every tile (once for an untiled image).
        """
        t0 = time.perf_counter()
        image = to_image(image, axes, channels)
        timings = {"read_s": time.perf_counter() - t0}
        px = pixel_size_um or image.pixel_size_um
        net, image, choice = self.fit_image(image)
        cfg = net.config
        if pixel_size_um is not None and not pixel_size_um > 0:
            raise PhenosegError(f"pixel_size_um={pixel_size_um}: must be a positive number (µm per pixel)")
        if not px:
            raise PhenosegError(
                f"{image.path or 'image'}: no pixel size in its metadata; pass pixel_size_um= "
                f"(µm per pixel, e.g. 0.25 for a 40x scan, 0.5 for 20x; the model works at {cfg.pixel_size_um})"
            )
        where = image.path or "image"
        check_pixel_size(px, cfg.pixel_size_um, image.shape_yx,
                         where if pixel_size_um else f"{where} (pixel size from its metadata; pass pixel_size_um=)")
        need = work_estimate(image.shape_yx, px / cfg.pixel_size_um, image.data.shape[0], len(cfg.targets))
        if need["memory_gb"] > machine_memory_gb():
            raise PhenosegError(f"{where}: segmenting it in memory needs ~{need['memory_gb']:.0f} GB "
                                f"({need['megapixels']:.0f} MP at the model's resolution), more than this machine has; "
                                "save it as a (pyramidal) TIFF or OME-Zarr to stream it in tiles")
        if tile_size is not None and tile_size < 64:
            raise PhenosegError(f"tile_size={tile_size}: must be at least 64 px")
        invalid = missing_pixels(image.data)
        if is_blank(image.data, invalid):  # a blank field is a result (0 objects), not a failure
            return self.blank_result(image, cfg, float(px), t0, choice)
        t1 = time.perf_counter()
        data = prepare(image.data, px, cfg.pixel_size_um, cfg.norm_percentiles).data
        if min(data.shape[-2:]) < 8:
            raise PhenosegError(f"{image.path or 'image'}: too small at the model's pixel size ({data.shape[-2:]})")
        timings["preprocess_s"] = time.perf_counter() - t1
        nuclei_on_cpu = cfg.adaptor is None and self.device.type == "cpu"
        auto = MEMORY_TILE if nuclei_on_cpu else channel_scaled_tile(AUTO_TILE, data.shape[0], cfg.adaptor is not None)
        # tiles only pay when a read window (tile + context on both sides) is smaller than the image
        tile = tile_size or (auto if max(data.shape[-2:]) > auto + 2 * self.overlap else None)
        thresholds = thresholds_dict(seed_threshold, mask_threshold, min_area)
        n_pixels = (min(tile + 2 * self.overlap, data.shape[-2]) * min(tile + 2 * self.overlap, data.shape[-1])
                    if tile else data.shape[-2] * data.shape[-1])
        finer = data.shape[-2] < image.shape_yx[0] and data.shape[-1] < image.shape_yx[1]
        run = self.tile_function(net, thresholds, n_pixels, timings, strength=finer and self.subpixel)
        if tile:  # tiles on the network's stride grid see exactly the features of an untiled run
            result = segment_tiled(data, run, tile, self.overlap, net.stride, progress, paired_targets(cfg.targets))
            timings["tiles"] = tile
        else:
            result = run(data)
            if progress is not None:
                progress(1, 1)
        labels, scores = result[0], result[1]
        soft = result[2] if len(result) > 2 else None
        t4 = time.perf_counter()
        shape = image.shape_yx
        out_labels, out_scores, tables = {}, {}, {}
        for i, target in enumerate(cfg.targets):
            pp = cfg.postprocess_for(target)
            at = mask_threshold if mask_threshold is not None else pp.mask_threshold
            level = self.outline_level if self.outline_level is not None else pp.outline_threshold
            up = upsample_labels(labels[i], shape, strength=None if soft is None else soft[i], threshold=at,
                                 level=max(at, level) if level is not None else None)
            lab = keep_largest_parts(up.astype(np.uint32))
            if invalid is not None:  # NaN / inf pixels are outside the image: no object there
                lab[invalid] = 0
            out_labels[target], out_scores[target] = lab, np.asarray(scores[i])
        pair = paired_targets(cfg.targets)
        if pair:  # matched nuclei and cells stay matched on the input's grid
            tn, tc = cfg.targets[pair[0]], cfg.targets[pair[1]]
            out_labels[tn], out_labels[tc] = contain_nuclei_np(out_labels[tn], out_labels[tc])
        renumber = renumber_objects(out_labels, out_scores, cfg.targets, pair)
        for target in cfg.targets:
            out_labels[target], out_scores[target] = renumber[target]
            tables[target] = object_table(out_labels[target], target, out_scores[target])
        timings.update(resize_s=time.perf_counter() - t4, total_s=time.perf_counter() - t0)
        valid = int(invalid.size - invalid.sum()) if invalid is not None else shape[0] * shape[1]
        notes = plausibility_notes(tables, out_labels, float(px), cfg.object_stats, valid)
        if invalid is not None:
            notes.insert(0, f"{invalid.mean():.1%} of the pixels are NaN / infinite: treated as outside the image")
        return SegmentationResult(out_labels, out_scores, cfg.name, float(px), timings, tables, notes, choice)
