"""Resumable training state in safetensors + JSON (no pickle anywhere)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from phenoseg.io.atomic import atomic_write, write_text_atomic


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(folder: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, info: dict[str, Any],
                    rng: np.random.Generator, torch_gen: torch.Generator) -> None:
    """Write model, optimizer and RNG state; each file replaced atomically, state.json last."""
    folder.mkdir(parents=True, exist_ok=True)
    opt_tensors, opt_meta = _flatten_optimizer(opt)
    extra = {"torch_rng": torch.get_rng_state(), "torch_gen": torch_gen.get_state()}
    files = (("model.safetensors", net.state_dict()), ("optimizer.safetensors", {**opt_tensors, **extra}))
    for fname, tensors in files:
        with atomic_write(folder / fname) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
    state = {"info": info, "optimizer": opt_meta, "numpy_rng": rng.bit_generator.state}
    write_text_atomic(folder / "state.json", json.dumps(state))


def load_checkpoint(folder: Path, net: torch.nn.Module, opt: torch.optim.Optimizer,
                    rng: np.random.Generator, torch_gen: torch.Generator) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote; returns the saved ``info``."""
    state = json.loads((folder / "state.json").read_text())
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("torch_rng"))
    torch_gen.set_state(tensors.pop("torch_gen"))
    _restore_optimizer(opt, tensors, state["optimizer"])
    rng.bit_generator.state = state["numpy_rng"]
    return state["info"]
