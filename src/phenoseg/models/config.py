"""Model configuration: everything needed to rebuild and run a model, stored as JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PostprocessConfig:
    """Thresholds and sizes of the InstanSeg postprocessing (method §1.2–1.4).

    Only pixels whose seed probability exceeds ``foreground_threshold`` are scored against seeds.
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


@dataclass
class ModelConfig:
    """Architecture, pixel size, channels, targets and metadata of one model."""

    name: str = "unnamed"
    description: str = ""
    in_channels: int = 3
    channel_names: list[str] = field(default_factory=lambda: ["red", "green", "blue"])
    modality: str = "brightfield"
    targets: list[str] = field(default_factory=lambda: ["nuclei"])
    pixel_size_um: float = 0.5
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    blocks_per_level: int = 1
    dim_positional: int = 2
    dim_conditional: int = 2
    mlp_hidden: int = 8
    coord_scale: float = 0.25
    offset_range: float = 8.0
    norm_percentiles: list[float] = field(default_factory=lambda: [0.1, 99.9])
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    license: str = "Apache-2.0"

    @property
    def head_channels(self) -> int:
        """Channels per target: seed + positional + conditional."""
        return 1 + self.dim_positional + self.dim_conditional

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict, ignoring unknown keys (forward compatible)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        pp = kwargs.get("postprocess", {})
        if isinstance(pp, dict):
            pknown = {f.name for f in dataclasses.fields(PostprocessConfig)}
            kwargs["postprocess"] = PostprocessConfig(**{k: v for k, v in pp.items() if k in pknown})
        return cls(**kwargs)
