"""The InstanSeg network, built from parts: [channel adaptor] → encoder → one decoder per target group →
1×1 heads (seed / positional / conditional per target); plus one instance MLP per target.

Constructors take their parts; :func:`build_instanseg` assembles them from a :class:`ModelConfig`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from phenoseg.models.config import ModelConfig
from phenoseg.models.unet import Decoder, Encoder

# adaptor kind → builder(config) → (module, output channels); ChannelNet registers here
ADAPTORS: dict[str, Callable[[ModelConfig], tuple[nn.Module, int]]] = {}


def instance_mlp(in_dim: int, hidden: int) -> nn.Sequential:
    """The per-seed instance head φ: [Q_ij − Q_k, E_ij] → membership logit."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )


class InstanSegNet(nn.Module):
    """``forward`` returns raw maps (B, targets × (1 + Dp + De), H, W), targets in ``config.targets`` order.

    Use :func:`split_target` to get one target's seed logits, positional offsets and conditional channels;
    :attr:`mlps` holds one instance MLP per target. ``decoders[g]`` and ``heads[g]`` serve target group g.
    """

    def __init__(self, config: ModelConfig, adaptor: nn.Module, encoder: Encoder, decoders: nn.ModuleList,
                 heads: nn.ModuleList, mlps: nn.ModuleList) -> None:
        super().__init__()
        if not (len(decoders) == len(heads) == len(config.target_groups())) or len(mlps) != len(config.targets):
            raise ValueError("one decoder and head per target group and one MLP per target are needed")
        self.config = config
        self.adaptor = adaptor
        self.encoder = encoder
        self.decoders = decoders
        self.heads = heads
        self.mlps = mlps

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return max(self.encoder.stride, int(getattr(self.adaptor, "stride", 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self.encoder(self.adaptor(x))
        outs: list[torch.Tensor] = []
        for decoder, head in zip(self.decoders, self.heads):
            outs.append(head(decoder(skips)))
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)


def build_instanseg(config: ModelConfig) -> InstanSegNet:
    """An InstanSeg network with the architecture of ``config`` (freshly initialised)."""
    if config.adaptor is None:
        adaptor, encoder_in = nn.Identity(), config.in_channels
    else:
        kind = config.adaptor.get("kind")
        if kind not in ADAPTORS:
            raise ValueError(f"unknown channel adaptor '{kind}' (known: {', '.join(ADAPTORS) or 'none'})")
        adaptor, encoder_in = ADAPTORS[kind](config)
    widths = list(config.widths)
    encoder = Encoder(encoder_in, widths, config.blocks_per_level)
    groups = config.target_groups()
    decoders = nn.ModuleList([Decoder(widths, config.blocks_per_level) for _ in groups])
    heads = nn.ModuleList([nn.Conv2d(widths[0], len(g) * config.head_channels, 1) for g in groups])
    mlp_in = config.dim_positional + config.dim_conditional
    mlps = nn.ModuleList([instance_mlp(mlp_in, config.mlp_hidden) for _ in config.targets])
    return InstanSegNet(config, adaptor, encoder, decoders, heads, mlps)


def legacy_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights saved before the network was built from parts (``backbone.encoders.i``, ``backbone.decoders.j``,
    ``heads.weight``) renamed to the parts' names; other state dicts come back unchanged."""
    if not any(k.startswith("backbone.") for k in state):
        return state
    out = {}
    for k, v in state.items():
        if k.startswith("backbone.encoders."):
            k = "encoder.stages." + k[len("backbone.encoders."):]
        elif k.startswith("backbone.decoders."):
            k = "decoders.0.stages." + k[len("backbone.decoders."):]
        elif k.startswith("heads."):
            k = "heads.0." + k[len("heads."):]
        out[k] = v
    return out


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
