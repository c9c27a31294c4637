"""Growing a trained network: more levels or more blocks per level, starting as the same function.

New residual blocks start with the scale of their last batch norm at ``NEW_BLOCK_SCALE`` and its shift
at zero (the block adds almost nothing, yet still gets gradients through its ReLU), and a new deepest
level starts with a zero projection into the decoder. The grown network therefore starts as (almost)
the trained one, and training then uses the extra capacity. Used by ``phenoseg train --grow``.
"""

from __future__ import annotations

import re

import torch

from phenoseg.errors import PhenosegError
from phenoseg.models.instanseg import InstanSegNet

NEW_BLOCK_SCALE = 1e-3
_DECODER = re.compile(r"^backbone\.decoders\.(\d+)\.(.*)$")
_BLOCK = re.compile(r"^backbone\.(encoders\.\d+|decoders\.\d+\.stage)\.(\d+)\.(.*)$")


def _new_key(key: str, extra_levels: int) -> str:
    """Where a trained parameter lives in the grown network (decoders shift by the added levels)."""
    m = _DECODER.match(key)
    if m:
        return f"backbone.decoders.{int(m.group(1)) + extra_levels}.{m.group(2)}"
    return key


def grow_network(base: InstanSegNet, grown: InstanSegNet) -> InstanSegNet:
    """Copy ``base``'s weights into ``grown`` (same widths as a prefix, at least as many blocks per level)
    and make every added part start as (almost) an identity. Returns ``grown``."""
    bw, gw = list(base.config.widths), list(grown.config.widths)
    if gw[: len(bw)] != bw or grown.config.blocks_per_level < base.config.blocks_per_level:
        raise PhenosegError(
            f"--grow: widths {gw} must start with the trained model's {bw}, and blocks per level "
            f"({grown.config.blocks_per_level}) must be at least its {base.config.blocks_per_level}"
        )
    extra = len(gw) - len(bw)
    state = grown.state_dict()
    placed: set[str] = set()
    for key, value in base.state_dict().items():
        target = _new_key(key, extra)
        if target not in state or state[target].shape != value.shape:
            raise PhenosegError(f"--grow: cannot place {key} {tuple(value.shape)} in the grown network")
        state[target] = value.clone()
        placed.add(target)
    for key in state:
        if key in placed:
            continue
        m = _BLOCK.match(key)
        # the last BN of a new block on the path to the output (a new deepest encoder level keeps its
        # default init: its zero projection already hides it)
        new_level = m is not None and m.group(1).startswith("encoders.") and int(m.group(1).split(".")[1]) >= len(bw)
        is_new_block_out = m is not None and not new_level and m.group(3).startswith("body.1.1.")
        is_new_projection = key.startswith("backbone.decoders.") and ".project." in key and \
            int(key.split(".")[2]) < extra
        if is_new_block_out and key.endswith(".weight"):
            state[key] = torch.full_like(state[key], NEW_BLOCK_SCALE)
        elif is_new_block_out and key.endswith(".bias"):
            state[key] = torch.zeros_like(state[key])
        elif is_new_projection:
            state[key] = torch.zeros_like(state[key])
    grown.load_state_dict(state)
    return grown
