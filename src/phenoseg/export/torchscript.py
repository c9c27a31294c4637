"""Whole-pipeline TorchScript: normalisation → padding → network → postprocessing → int32 labels.

The file runs from LibTorch (C++, Java / QuPath) or ``torch.jit.load`` without phenoseg installed. It
reuses the package's own :class:`~phenoseg.postprocess.InstanceDecoder` (no second copy).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from phenoseg.inference.runner import build_decoder
from phenoseg.io.atomic import atomic_write
from phenoseg.models.instanseg import InstanSegNet
from phenoseg.normalise import normalisation_stats_tensor, normalise_tensor
from phenoseg.postprocess.pairing import one_piece_matched, paired_targets
from phenoseg.preprocess import pad_to_multiple


class InstanSegPipeline(nn.Module):
    """forward(x (B, C, H, W) float at the model's pixel size) → labels (B, targets, H, W) int32.

    The input contract: ``x`` is already at ``pixel_size_um`` µm/px (resample before calling; the module
    does not know the image's pixel size), its C channels in the order of ``channel_names`` (RGB in 0–255
    for brightfield, raw intensities for fluorescence), at least 16 × 16 px. With ``normalise=True`` (the
    default) each image is normalised by its own robust percentiles (:mod:`phenoseg.normalise`) and
    NaN / inf pixels count as outside it (label 0); with ``normalise=False`` ``x`` must be normalised and
    finite. ``seed_threshold`` / ``mask_threshold`` / ``min_area`` override the model's postprocessing.
    Output: labels per target in the order of ``targets``, 0 = background, ids from 1 per image and target.

    A ChannelNet model (``any_channels``) takes any number of channels in any order. A nuclei + cells model's
    labels are matched: a nucleus has its cell's id and lies inside it.

    Attributes: ``pixel_size_um``, ``channel_names``, ``targets``, ``in_channels``, ``any_channels``, ``stride``.
    """

    def __init__(self, net: InstanSegNet) -> None:
        super().__init__()
        cfg = net.config
        self.net = net.eval()
        self.decoder = build_decoder(net)
        self.pair = paired_targets(list(cfg.targets)) or [-1, -1]  # [nuclei, cells], or none
        self.pixel_size_um = float(cfg.pixel_size_um)
        self.channel_names = list(cfg.channel_names)
        self.targets = list(cfg.targets)
        self.in_channels = int(cfg.in_channels)
        self.any_channels = cfg.adaptor is not None  # a ChannelNet model takes any number, in any order
        self.stride = int(net.stride)
        self.low = float(cfg.norm_percentiles[0])
        self.high = float(cfg.norm_percentiles[1])

    def forward(
        self,
        x: torch.Tensor,
        normalise: bool = True,
        seed_threshold: float | None = None,
        mask_threshold: float | None = None,
        min_area: int | None = None,
    ) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError("expected a (batch, channel, height, width) tensor")
        if not self.any_channels and x.shape[1] != self.in_channels:
            raise ValueError(f"the model expects {self.in_channels} channel(s), got {x.shape[1]}")
        h, w = x.shape[2], x.shape[3]
        if h < 16 or w < 16:
            raise ValueError("the image is too small (at least 16 x 16 pixels)")
        x = x.to(torch.float32)
        valid = torch.isfinite(x).all(dim=1)  # (B, H, W): NaN / inf pixels are outside the image
        if not bool(valid.flatten(1).any(dim=1).all()):
            raise ValueError("an image has no finite pixel (all NaN or infinite)")
        if normalise:
            x = torch.stack([normalise_tensor(x[i], normalisation_stats_tensor(x[i], self.low, self.high))
                             for i in range(x.shape[0])])
        elif not bool(valid.all()):
            raise ValueError("the image contains NaN or infinite values (pass normalise=True to treat them as outside)")
        x, _ = pad_to_multiple(x, self.stride, self.stride * 2)
        raw = self.net(x)[:, :, :h, :w]
        labels = self.decoder(raw, seed_threshold, mask_threshold, min_area) * valid[:, None].to(torch.int32)
        return one_piece_matched(labels, self.pair)  # as the Segmenter: one piece per object, nuclei in cells


def export_torchscript(net: InstanSegNet, path: str | os.PathLike) -> Path:
    """Script and save the whole pipeline of ``net`` (written to a temp name, then renamed)."""
    p = Path(path)
    scripted = torch.jit.script(InstanSegPipeline(net))
    with atomic_write(p, ".pt") as tmp:
        scripted.save(tmp)
    return p
