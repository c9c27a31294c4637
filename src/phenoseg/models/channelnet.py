"""ChannelNet: a channel-invariant adaptor that maps an image with any number and order of channels to a fixed
3-channel representation for the InstanSeg backbone (method §2).

Every channel is one member of an unordered set, processed by one shared small U-Net. After every block the
members' features are max-pooled across the set and fed back to every member (DeepSets style); the last block
pools across the set and a 1×1 convolution gives 3 channels. A block's convolution of [member, pooled] is split
into a per-member part and a pooled part computed once per image, so the cost grows linearly with the channel
count and the pooled features are never copied per member.

A channel whose pixels are all NaN is *absent*: it takes no part in the pooling (a batch mixing channel counts
is padded with NaN channels). Permuting the channels leaves the output unchanged (up to float rounding).
The module has no batch statistics, so training and inference see the same function, and it scripts. Its
weights are kept channels-last, so its activations are too (faster small convolutions on CPU).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import ADAPTORS

DEFAULT_WIDTHS = [8, 16, 32]
OUT_CHANNELS = 3


class SetBlock(nn.Module):
    """Two 3×3 convolutions per member; the first also sees the set's pooled features (or nothing at the
    first block). Input members (N·C, cin, H, W), pooled (N, cpool, H, W); output (N·C, cout, H, W) ≥ 0."""

    def __init__(self, cin: int, cpool: int, cout: int) -> None:
        super().__init__()
        self.member = nn.Conv2d(cin, cout, 3, padding=1)
        self.pooled = nn.Conv2d(cpool, cout, 3, padding=1, bias=False) if cpool > 0 else None
        self.second = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor, pooled: torch.Tensor | None, n_channels: int) -> torch.Tensor:
        y = self.member(x)
        p = self.pooled
        if p is not None and pooled is not None:
            q = p(pooled)  # once per image, added to each of its members (not in place on a view: the ONNX
            y = (y.unflatten(0, (q.shape[0], n_channels)) + q[:, None]).flatten(0, 1)  # export would lose it)
        y = self.second(F.relu_(y))
        s = self.skip
        return F.relu_(y.add_(s(x) if s is not None else x))


def set_max(members: torch.Tensor, valid: torch.Tensor, n_channels: int, all_valid: bool) -> torch.Tensor:
    """Max over each image's present members: (N·C, F, H, W) features ≥ 0 and (N, C) validity → (N, F, H, W)."""
    m = members.unflatten(0, (valid.shape[0], n_channels))
    if not all_valid:  # features are ≥ 0, so a zeroed absent member never beats a present one
        m = m * valid[:, :, None, None, None].to(m.dtype)
    return m.amax(1)


class ChannelNet(nn.Module):
    """(N, C, H, W) with any C ≥ 1 → (N, 3, H, W); sides must be multiples of :attr:`stride`."""

    def __init__(self, widths: list[int] | None = None, out_channels: int = OUT_CHANNELS) -> None:
        super().__init__()
        widths = list(widths or DEFAULT_WIDTHS)
        self.widths = widths
        self.stride = 2 ** (len(widths) - 1)
        self.down = nn.ModuleList()
        prev = 1
        for i, w in enumerate(widths):
            self.down.append(SetBlock(prev, widths[i - 1] if i > 0 else 0, w))
            prev = w
        self.project = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.project.append(nn.Conv2d(widths[i], widths[i - 1], 1, bias=False))
            self.up.append(SetBlock(widths[i - 1], widths[i], widths[i - 1]))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        valid = ~torch.isnan(x).flatten(2).all(-1)  # (N, C): all-NaN channels are absent
        all_valid = bool(valid.all())
        if not all_valid:
            x = torch.nan_to_num(x, nan=0.0)
        h = x.reshape(n * c, 1, x.shape[2], x.shape[3])
        skips: list[torch.Tensor] = []
        pooled: torch.Tensor | None = None
        for i, block in enumerate(self.down):
            if i > 0:
                h = F.max_pool2d(h, 2)
                assert pooled is not None
                pooled = F.max_pool2d(pooled, 2)
            h = block(h, pooled, c)
            if not all_valid:  # absent members stay 0
                h = h * valid.reshape(n * c, 1, 1, 1).to(h.dtype)
            pooled = set_max(h, valid, c, all_valid)
            skips.append(h)
        assert pooled is not None
        for j, (project, block) in enumerate(zip(self.project, self.up)):
            skip = skips[len(skips) - 2 - j]
            h = F.interpolate(project(h), scale_factor=2.0, mode="nearest") + skip
            pooled = F.interpolate(pooled, scale_factor=2.0, mode="nearest")
            h = block(h, pooled, c)
            if not all_valid:
                h = h * valid.reshape(n * c, 1, 1, 1).to(h.dtype)
            pooled = set_max(h, valid, c, all_valid)
        return self.head(pooled)


def build_channelnet(config: ModelConfig) -> tuple[nn.Module, int]:
    """The adaptor of ``config.adaptor`` (``{"kind": "channelnet", "widths": [...]}``) and its output channels."""
    assert config.adaptor is not None
    widths = config.adaptor.get("widths", DEFAULT_WIDTHS)
    # channels-last: the small per-member convolutions run ~30 % faster on CPU (the layout survives loading)
    return ChannelNet(list(widths)).to(memory_format=torch.channels_last), OUT_CHANNELS


ADAPTORS["channelnet"] = build_channelnet
