"""The crop classifier (method §3): a small MobileNet-style CNN that reads a fixed field of view centred on
each object, plus the object's mask and its neighbours' mask, and gives class probabilities and a detection
probability ("is this a nucleus at all").

Inputs are (B, C + masks, S, S) crops at the classifier's pixel size (see :mod:`phenoseg.phenotype.crops`).
The output is (B, K + 1) logits: K class logits (softmax) then one detection logit (sigmoid). A model trained
with weak labels has a second, *silver* class head that only training reads (``silver_logits``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# QuPath-style colours for the class names phenoseg's bundled classifiers use (others: a fixed palette)
CLASS_COLOURS = {
    "other": (160, 160, 160), "inflammatory": (0, 150, 255), "epithelial": (220, 40, 40),
    "spindle": (40, 180, 60), "lymphocyte": (0, 150, 255), "tumour": (220, 40, 40), "stromal": (40, 180, 60),
}
PALETTE = [(230, 160, 0), (150, 60, 200), (0, 190, 190), (240, 100, 170), (120, 90, 40), (90, 90, 255)]


def class_colour(name: str, index: int) -> tuple[int, int, int]:
    """The display colour of a class: a known name's colour, else one from a fixed palette by position."""
    return CLASS_COLOURS.get(name.lower(), PALETTE[index % len(PALETTE)])


@dataclass
class ClassifierConfig:
    """Everything needed to rebuild and run a crop classifier, stored as JSON (``kind: classifier``).

    ``crop_px`` pixels at ``pixel_size_um`` make the field of view; ``mask_channels`` are appended to the
    image channels (``object``: the object's own mask, ``neighbours``: every other object). ``target`` names
    the objects it classifies (``nuclei`` or ``cells``). ``normalise``: ``range`` divides by the full range
    of the image's integer type (8-bit brightfield keeps its absolute colours), ``percentile`` scales each
    channel between its ``norm_percentiles`` (fluorescence).
    """

    kind: str = "classifier"
    name: str = "unnamed"
    description: str = ""
    modality: str = "brightfield"
    channel_names: list[str] = field(default_factory=lambda: ["red", "green", "blue"])
    in_channels: int = 3
    target: str = "nuclei"
    classes: list[str] = field(default_factory=lambda: ["other"])
    colours: list[list[int]] = field(default_factory=list)
    detection: bool = True
    silver_classes: list[str] | None = None
    pixel_size_um: float = 0.5
    crop_px: int = 64
    mask_channels: list[str] = field(default_factory=lambda: ["object", "neighbours"])
    normalise: str = "range"
    norm_percentiles: list[float] = field(default_factory=lambda: [1.0, 99.8])
    widths: list[int] = field(default_factory=lambda: [16, 24, 40, 64])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 2, 2])  # blocks per stage
    fused_stages: int = 2  # the first stages use fused blocks (3×3 expansion: faster at high resolution)
    expansion: int = 4
    dropout: float = 0.2
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    license: str = "Apache-2.0"

    def __post_init__(self) -> None:
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct and at least one, got {self.classes}")
        if not self.colours:
            self.colours = [list(class_colour(c, i)) for i, c in enumerate(self.classes)]
        if self.normalise not in ("range", "percentile"):
            raise ValueError(f"normalise must be 'range' or 'percentile', got {self.normalise!r}")
        if len(self.blocks) != len(self.widths):
            raise ValueError(f"blocks {self.blocks} and widths {self.widths} differ in length")
        bad = set(self.mask_channels) - {"object", "neighbours"}
        if bad:
            raise ValueError(f"unknown mask channels {sorted(bad)} (known: object, neighbours)")

    @property
    def targets(self) -> list[str]:
        """The objects it classifies (for model listings)."""
        return [self.target]

    @property
    def input_channels(self) -> int:
        """Channels of one crop: the image's plus the masks."""
        return self.in_channels + len(self.mask_channels)

    def accepts(self, n_channels: int) -> bool:
        """Whether an image with ``n_channels`` channels fits."""
        return n_channels == self.in_channels

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class InvertedBottleneck(nn.Module):
    """MobileNetV2's block: 1×1 expansion → 3×3 depthwise (stride) → 1×1 projection; ``fused`` (EfficientNetV2 /
    MobileNetV4): 3×3 expansion (stride) → 1×1 projection, faster at high resolution on CPUs. Residual when
    the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, fused: bool = False) -> None:
        super().__init__()
        mid = cin * expansion
        if fused:
            expand = [nn.Conv2d(cin, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True)]
        else:
            expand = [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True),
                      nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
                      nn.ReLU6(inplace=True)]
        self.body = nn.Sequential(*expand, nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class CropClassifier(nn.Module):
    """Stem (3×3, stride 2) → stages of (fused, then depthwise) inverted bottlenecks, each but the first
    halving the resolution → 1×1 widening → global average pool → class head (K) + detection head (1)
    [+ silver head]."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        layers: list[nn.Module] = [nn.Conv2d(config.input_channels, w[0], 3, 2, 1, bias=False),
                                   nn.BatchNorm2d(w[0]), nn.ReLU6(inplace=True)]
        cin = w[0]
        for i, (cout, n) in enumerate(zip(w, config.blocks)):
            fused = i < config.fused_stages
            e = 2 if fused else config.expansion
            for j in range(n):
                layers.append(InvertedBottleneck(cin, cout, 2 if j == 0 and i > 0 else 1, e, fused))
                cin = cout
        width = 4 * w[-1]
        layers += [nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(width, len(config.classes) + 1)  # classes, then the detection logit
        n_silver = len(config.silver_classes or [])
        self.silver = nn.Linear(width, n_silver) if n_silver else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, width) pooled features of crops."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K + 1) logits: K classes then detection."""
        return self.head(self.drop(self.embed(x)))

    def logits_and_silver(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training: the gold logits and the silver head's (None without one), from one feature pass."""
        f = self.drop(self.embed(x))
        return self.head(f), (self.silver(f) if self.silver is not None else None)


def build_classifier(config: ClassifierConfig) -> CropClassifier:
    """A freshly initialised classifier for ``config``."""
    return CropClassifier(config)
