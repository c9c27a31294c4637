"""Network building blocks shared by every model kind."""

from __future__ import annotations

import torch
from torch import nn


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

    @torch.no_grad()
    def start_near_identity(self, scale: float) -> None:
        """Scale the last batch norm to ``scale`` (shift 0): the block then adds almost nothing to its
        shortcut yet still receives gradients (used when growing a trained network)."""
        norm = self.body[1][1]
        norm.weight.fill_(scale)
        norm.bias.zero_()


def residual_stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    """``blocks`` residual blocks, the first one changing the width from ``cin`` to ``cout``."""
    return nn.Sequential(*[ResidualBlock(cin if i == 0 else cout, cout) for i in range(blocks)])
