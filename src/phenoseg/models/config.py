"""Model configuration: everything needed to rebuild and run a model, stored as JSON.

``kind`` names the builder in :mod:`phenoseg.models.zoo` (``instanseg`` now). An InstanSeg model predicts
one or more ``targets`` (``nuclei``, ``cells``); each target has its own postprocessing settings.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PostprocessConfig:
    """Thresholds and sizes of the InstanSeg postprocessing of one target (method §1.2–1.4).

    Only pixels whose seed probability exceeds ``foreground_threshold`` are scored against seeds.
    ``outline_threshold``: on an input finer than the model's grid, the membership probability at which the
    outline is drawn between model pixels (None: ``mask_threshold``).
    """

    seed_threshold: float = 0.5
    seed_radius: int = 3
    mask_threshold: float = 0.5
    foreground_threshold: float = 0.05
    iou_threshold: float = 0.4
    window: int = 64
    max_seeds_per_mpx: int = 8000
    min_area_px: int = 8
    cleanup_fragments: bool = True
    outline_threshold: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PostprocessConfig:
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


POSTPROCESS_KEYS = frozenset(f.name for f in dataclasses.fields(PostprocessConfig))


@dataclass
class ModelConfig:
    """Architecture, pixel size, channels, targets and metadata of one InstanSeg model.

    ``postprocess`` maps every target to its :class:`PostprocessConfig` (a single PostprocessConfig given
    to the constructor applies to every target). ``decoder_groups`` lists which targets share a decoder
    (None: one decoder for all). ``adaptor`` configures an optional channel adaptor in front of the encoder
    (the slot for ChannelNet; None: the image's channels go straight in).
    """

    kind: str = "instanseg"
    name: str = "unnamed"
    description: str = ""
    in_channels: int = 3
    channel_names: list[str] = field(default_factory=lambda: ["red", "green", "blue"])
    modality: str = "brightfield"
    targets: list[str] = field(default_factory=lambda: ["nuclei"])
    decoder_groups: list[list[str]] | None = None
    adaptor: dict[str, Any] | None = None
    pixel_size_um: float = 0.5
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    blocks_per_level: int = 1
    dim_positional: int = 2
    dim_conditional: int = 2
    mlp_hidden: int = 8
    coord_scale: float = 0.25
    offset_range: float = 8.0
    norm_percentiles: list[float] = field(default_factory=lambda: [0.1, 99.9])
    postprocess: dict[str, PostprocessConfig] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    object_stats: dict[str, Any] = field(default_factory=dict)  # per target: training areas / densities
    license: str = "Apache-2.0"

    def __post_init__(self) -> None:
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets must be distinct and at least one, got {self.targets}")
        pp = self.postprocess
        if isinstance(pp, PostprocessConfig):
            self.postprocess = {t: copy.deepcopy(pp) for t in self.targets}
        else:
            self.postprocess = {t: copy.deepcopy(pp[t]) if t in pp else PostprocessConfig() for t in self.targets}
        groups = self.target_groups()
        if [t for g in groups for t in g] != list(self.targets):
            raise ValueError(f"decoder_groups {groups} must list the targets {self.targets} once each, in order")

    @property
    def head_channels(self) -> int:
        """Channels per target: seed + positional + conditional."""
        return 1 + self.dim_positional + self.dim_conditional

    def target_groups(self) -> list[list[str]]:
        """The targets of each decoder, in output order."""
        return [list(g) for g in self.decoder_groups] if self.decoder_groups else [list(self.targets)]

    def postprocess_for(self, target: str) -> PostprocessConfig:
        """The postprocessing settings of one target."""
        return self.postprocess[target]

    def accepts(self, n_channels: int) -> bool:
        """Whether an image with ``n_channels`` channels can go into this model (any count with an adaptor)."""
        return self.adaptor is not None or n_channels == self.in_channels

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict, ignoring unknown keys (forward compatible). A ``postprocess`` holding one set
        of settings (configs written before targets had their own) applies to every target."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        pp = kwargs.get("postprocess", {})
        if isinstance(pp, dict):
            if pp and set(pp) <= POSTPROCESS_KEYS:
                kwargs["postprocess"] = PostprocessConfig.from_dict(pp)
            else:
                kwargs["postprocess"] = {t: PostprocessConfig.from_dict(v) for t, v in pp.items()}
        return cls(**kwargs)
