"""MobileNet-ISAB (``kind: positivity``, method §4): is each cell positive for a marker?

Each cell's 2-channel crop (the marker channel + the cell's mask, ``crop_px`` px at ``pixel_size_um``) →
a small MobileNetV4-style encoder (stride-1 stem, fused then universal inverted bottlenecks) → a
``embed_dim`` embedding; an Induced Set Attention Block (``inducing`` points, ``heads`` heads; O(n·m),
permutation-equivariant, any number of cells) lets every cell see all cells of that marker in that image;
a linear layer gives one logit per cell. ``isab: false`` is the per-cell ablation. ``cell_stats``: the mean
marker level inside the cell's mask and around it join the pooled features before the projection (an explicit
intensity cue the network would otherwise have to learn from the mask channel).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from phenoseg.models.classifier import InvertedBottleneck


@dataclass
class PositivityConfig:
    """Everything needed to rebuild a positivity model (JSON). ``normalise_percentiles``: the marker channel
    is scaled per image between these percentiles of its pixels inside cells."""

    kind: str = "positivity"
    name: str = "marker_positivity"
    description: str = ""
    pixel_size_um: float = 0.5
    crop_px: int = 64
    widths: list[int] = field(default_factory=lambda: [8, 16, 32, 48, 64])
    expansion: int = 3
    embed_dim: int = 64
    heads: int = 4
    inducing: int = 16
    isab: bool = True
    cell_stats: bool = False
    normalise_percentiles: list[float] = field(default_factory=lambda: [1.0, 99.5])
    threshold: float = 0.5
    license: str = "Apache-2.0"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        """The objects it scores (for model listings)."""
        return ["cells"]

    @property
    def channel_names(self) -> list[str]:
        """Any marker: one channel at a time."""
        return ["marker"]

    modality: str = "fluorescence"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PositivityConfig:
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class UniversalIB(nn.Module):
    """MobileNetV4's universal inverted bottleneck: 3×3 depthwise on the input, 1×1 expansion, 3×3 depthwise
    (stride), 1×1 projection; residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MAB(nn.Module):
    """Multihead attention block: H = LN(Q + Attention(Q, K, K)); LN(H + FF(H))."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(inplace=True), nn.Linear(2 * dim, dim))

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        h = self.norm1(q + self.attention(q, k, k, need_weights=False)[0])
        return self.norm2(h + self.ff(h))


class ISAB(nn.Module):
    """Induced set attention (Lee et al. 2019): m inducing points attend to the set, the set attends back.
    ``chunk`` bounds the memory of the second step on very large sets (slides: a million cells)."""

    def __init__(self, dim: int, heads: int, inducing: int) -> None:
        super().__init__()
        self.inducing = nn.Parameter(torch.randn(1, inducing, dim) * dim**-0.5)
        self.summarise, self.broadcast = MAB(dim, heads), MAB(dim, heads)

    def forward(self, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        h = self.summarise(self.inducing.expand(x.shape[0], -1, -1), x)
        if x.shape[1] <= chunk:
            return self.broadcast(x, h)
        return torch.cat([self.broadcast(x[:, s:s + chunk], h) for s in range(0, x.shape[1], chunk)], 1)


class MarkerPositivityNet(nn.Module):
    """Crop encoder + ISAB + linear: ``embed(crops)`` → (N, D); ``set_logits(embeddings)`` → (N,) for one set."""

    def __init__(self, config: PositivityConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        layers: list[nn.Module] = [nn.Conv2d(2, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]),
                                   nn.ReLU(inplace=True)]
        cin = w[0]
        for i, cout in enumerate(w[1:]):
            layers.append(InvertedBottleneck(cin, cout, 2, 2, fused=True) if i < 1 else
                          UniversalIB(cin, cout, 2, config.expansion))
            cin = cout
        layers += [nn.Conv2d(cin, 2 * cin, 1, bias=False), nn.BatchNorm2d(2 * cin), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.project = nn.Linear(2 * cin + (2 if config.cell_stats else 0), config.embed_dim)
        self.isab = ISAB(config.embed_dim, config.heads, config.inducing) if config.isab else None
        self.head = nn.Linear(config.embed_dim, 1)

    def embed(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 2, S, S) crops → (N, embed_dim)."""
        pooled = self.features(crops).mean(dim=(2, 3))
        if self.config.cell_stats:
            marker, mask = crops[:, 0], crops[:, 1]
            inside = (marker * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp_min(1.0)
            around = (marker * (1 - mask)).sum(dim=(1, 2)) / (1 - mask).sum(dim=(1, 2)).clamp_min(1.0)
            pooled = torch.cat([pooled, inside[:, None], around[:, None]], 1)
        return self.project(pooled)

    def set_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings of one set (one marker in one image or slide) → (N,) logits."""
        x = embeddings[None]
        if self.isab is not None:
            x = self.isab(x)
        return self.head(x)[0, :, 0]

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """All crops of one set → (N,) logits."""
        return self.set_logits(self.embed(crops))


def build_positivity(config: PositivityConfig) -> MarkerPositivityNet:
    """A freshly initialised positivity model."""
    return MarkerPositivityNet(config)
