"""The InstanSeg network: backbone, per-target seed / positional / conditional heads, instance MLP."""

from __future__ import annotations

import torch
from torch import nn

from phenoseg.models.config import ModelConfig
from phenoseg.models.unet import ResidualUNet


def instance_mlp(in_dim: int, hidden: int) -> nn.Sequential:
    """The per-seed instance head φ: [Q_ij − Q_k, E_ij] → membership logit."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )


class InstanSegNet(nn.Module):
    """Backbone plus 1×1 heads. ``forward`` returns raw maps (B, targets × (1 + Dp + De), H, W).

    Use :func:`split_target` to get the seed logits, positional offsets and conditional channels of
    one target; :attr:`mlps` holds one instance MLP per target.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResidualUNet(config.in_channels, list(config.widths), config.blocks_per_level)
        n_targets = len(config.targets)
        self.heads = nn.Conv2d(config.widths[0], n_targets * config.head_channels, 1)
        mlp_in = config.dim_positional + config.dim_conditional
        self.mlps = nn.ModuleList([instance_mlp(mlp_in, config.mlp_hidden) for _ in range(n_targets)])

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return self.backbone.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.backbone(x))


def split_target(
    raw: torch.Tensor, target: int, dim_positional: int, dim_conditional: int, offset_range: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split raw network output (B, T·C, H, W) into seed logits (B, H, W), positional offsets
    (B, Dp, H, W, squashed to ±offset_range/2) and conditional channels (B, De, H, W) of one target."""
    c = 1 + dim_positional + dim_conditional
    part = raw[:, target * c : (target + 1) * c]
    seed_logits = part[:, 0]
    offsets = (torch.sigmoid(part[:, 1 : 1 + dim_positional]) - 0.5) * offset_range
    conditional = part[:, 1 + dim_positional :]
    return seed_logits, offsets, conditional
