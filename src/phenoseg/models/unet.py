"""A Cellpose-style residual U-Net: max-pool down, nearest up, skips merged by summation."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvNormAct(nn.Sequential):
    """3×3 convolution → batch norm → ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two conv-norm-act layers with a (1×1 projected when needed) identity shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(cin, cout), ConvNormAct(cout, cout))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(cin if i == 0 else cout, cout) for i in range(blocks)])


class DecoderStage(nn.Module):
    """1×1 projection, nearest ×2 upsampling, summed skip, residual stage."""

    def __init__(self, cin: int, cout: int, blocks: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(cin, cout, 1, bias=False)
        self.stage = _stage(cout, cout, blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.project(x), scale_factor=2.0, mode="nearest")
        return self.stage(x + skip)


class ResidualUNet(nn.Module):
    """U-Net backbone of configurable depth and widths.

    Input height and width must be multiples of ``2 ** (len(widths) - 1)`` (see :attr:`stride`).
    The output has ``widths[0]`` channels at full resolution.
    """

    def __init__(self, in_channels: int, widths: list[int], blocks_per_level: int = 1) -> None:
        super().__init__()
        self.stride = 2 ** (len(widths) - 1)
        self.encoders = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoders.append(_stage(prev, w, blocks_per_level))
            prev = w
        self.decoders = nn.ModuleList(
            [DecoderStage(widths[i], widths[i - 1], blocks_per_level) for i in range(len(widths) - 1, 0, -1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for i, enc in enumerate(self.encoders):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        x = skips[-1]
        n = len(skips)
        for j, dec in enumerate(self.decoders):
            x = dec(x, skips[n - 2 - j])
        return x
