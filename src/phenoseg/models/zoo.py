"""Models are data: a directory with ``config.json`` + ``weights.safetensors`` (+ ``MODEL_CARD.md``).

The registry finds the models bundled in ``phenoseg/zoo/`` by name; any directory path works too.
Weights are read with safetensors only: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from phenoseg.errors import PhenosegError
from phenoseg.io.atomic import atomic_write, write_text_atomic
from phenoseg.models import channelnet as _channelnet  # noqa: F401  (registers the ChannelNet adaptor)
from phenoseg.models.classifier import ClassifierConfig, build_classifier
from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import build_instanseg, legacy_state_dict
from phenoseg.models.positivity import PositivityConfig, build_positivity

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"


@dataclass(frozen=True)
class ModelKind:
    """How one kind of model is made from its config: the config class (``from_dict``), the builder, and a
    function renaming weights saved by older versions."""

    config: type
    build: Callable[..., nn.Module]
    upgrade_state: Callable[[dict], dict] = lambda state: state


KINDS: dict[str, ModelKind] = {"instanseg": ModelKind(ModelConfig, build_instanseg, legacy_state_dict),
                               "classifier": ModelKind(ClassifierConfig, build_classifier),
                               "positivity": ModelKind(PositivityConfig, build_positivity)}


def register_kind(name: str, kind: ModelKind) -> None:
    """Make ``config.json`` files with ``"kind": name`` loadable."""
    KINDS[name] = kind


def build_model(config) -> nn.Module:
    """A freshly initialised model for ``config`` (its ``kind`` picks the builder)."""
    return KINDS[config.kind].build(config)


def model_kind(model_dir: Path) -> str:
    """The ``kind`` written in a model directory's config (``instanseg`` when absent or unreadable)."""
    try:
        return str(json.loads((Path(model_dir) / CONFIG_NAME).read_text()).get("kind", "instanseg"))
    except (OSError, ValueError, AttributeError):
        return "instanseg"


def bundled_model_dirs(kind: str | None = "instanseg") -> dict[str, Path]:
    """Name → directory of every model of ``kind`` shipped inside the package (segmenters by default;
    ``classifier``; None: every kind)."""
    if not ZOO_DIR.is_dir():
        return {}
    dirs = {p.name: p for p in sorted(ZOO_DIR.iterdir()) if (p / CONFIG_NAME).is_file()}
    return {n: p for n, p in dirs.items() if kind is None or model_kind(p) == kind}


def resolve_model_dir(name_or_dir: str | os.PathLike) -> Path:
    """A bundled model's name or a model directory → the directory (clear error when neither)."""
    path = Path(name_or_dir)
    if (path / CONFIG_NAME).is_file():
        return path
    bundled = bundled_model_dirs(None)
    if str(name_or_dir) in bundled:
        return bundled[str(name_or_dir)]
    names = ", ".join(bundled) or "none"
    raise PhenosegError(f"no model '{name_or_dir}': not a model directory and not a bundled model ({names})")


def read_config(model_dir: str | os.PathLike):
    """Read a model directory's config.json into the config class of its ``kind`` (default instanseg)."""
    path = Path(model_dir) / CONFIG_NAME
    try:
        data = json.loads(path.read_text())
        kind = data.get("kind", "instanseg")
        if kind not in KINDS:
            raise ValueError(f"unknown model kind '{kind}' (known: {', '.join(KINDS)})")
        return KINDS[kind].config.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        raise PhenosegError(f"cannot read model config {path}: {exc}") from exc


def load_model(name_or_dir: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model (bundled name or directory) in eval mode; its config is at ``model.config``."""
    model_dir = resolve_model_dir(name_or_dir)
    config = read_config(model_dir)
    kind = KINDS[config.kind]
    net = kind.build(config)
    weights = model_dir / WEIGHTS_NAME
    if weights.is_file():
        try:
            state = kind.upgrade_state(load_file(str(weights), device="cpu"))
            net.load_state_dict(state)
        except Exception as exc:  # safetensors raises several types on corrupt files
            raise PhenosegError(f"cannot load weights {weights}: {exc}") from exc
    else:
        raise PhenosegError(f"model directory {model_dir} has no {WEIGHTS_NAME}")
    return net.to(device).eval()


def save_model(net: nn.Module, model_dir: str | os.PathLike) -> Path:
    """Write ``config.json`` and ``weights.safetensors`` atomically into ``model_dir``."""
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_write(out / WEIGHTS_NAME) as tmp:
        save_file(state, tmp)
    write_text_atomic(out / CONFIG_NAME, json.dumps(net.config.to_dict(), indent=2))
    return out


def replace_bundled_model(net: nn.Module, name: str) -> Path:
    """Write ``net`` as the bundled model ``name`` (its folder replaced, its hand-written MODEL_CARD.md kept);
    used by the packaging tools."""
    import shutil

    out = ZOO_DIR / name
    card_path = out / "MODEL_CARD.md"
    card = card_path.read_text() if card_path.is_file() else None
    if out.exists():
        shutil.rmtree(out)
    save_model(net, out)
    if card is not None:
        card_path.write_text(card)
    return out


def list_models() -> list[dict]:
    """Summary of every bundled model: name, pixel size, channels, targets, modality, metrics, the weights'
    licence and whether it allows commercial use."""
    rows = []
    for name, d in bundled_model_dirs(None).items():
        cfg = read_config(d)
        rows.append(
            {
                "name": name,
                "kind": cfg.kind,
                "pixel_size_um": cfg.pixel_size_um,
                "channels": cfg.channel_names,
                "targets": cfg.targets,
                "modality": cfg.modality,
                "description": cfg.description,
                "path": str(d),
                "metrics": cfg.metrics,
                "license": cfg.license,
                "commercial_use": not any(k in cfg.license.upper() for k in ("NC", "NON-COMMERCIAL")),
            }
        )
    return rows
