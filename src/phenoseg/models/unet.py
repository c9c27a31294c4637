"""A Cellpose-style residual U-Net as two parts: max-pool :class:`Encoder`, nearest-up :class:`Decoder`."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from phenoseg.models.blocks import residual_stage


class Encoder(nn.Module):
    """Residual stages at halving resolutions; ``forward`` returns every stage's output (the skips),
    finest first. Input sides must be multiples of :attr:`stride`."""

    def __init__(self, in_channels: int, widths: list[int], blocks_per_level: int = 1) -> None:
        super().__init__()
        self.widths = list(widths)
        self.stride = 2 ** (len(widths) - 1)
        self.stages = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.stages.append(residual_stage(prev, w, blocks_per_level))
            prev = w

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = stage(x)
            skips.append(x)
        return skips


class DecoderStage(nn.Module):
    """1×1 projection, nearest ×2 upsampling, summed skip, residual stage."""

    def __init__(self, cin: int, cout: int, blocks: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(cin, cout, 1, bias=False)
        self.stage = residual_stage(cout, cout, blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.project(x), scale_factor=2.0, mode="nearest")
        return self.stage(x + skip)


class Decoder(nn.Module):
    """From an :class:`Encoder`'s skips back to full resolution; output has ``widths[0]`` channels.

    ``stages[0]`` is the deepest (it takes the coarsest skip)."""

    def __init__(self, widths: list[int], blocks_per_level: int = 1) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            [DecoderStage(widths[i], widths[i - 1], blocks_per_level) for i in range(len(widths) - 1, 0, -1)]
        )

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        n = len(skips)
        for j, stage in enumerate(self.stages):
            x = stage(x, skips[n - 2 - j])
        return x
