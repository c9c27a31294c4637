"""Growing a trained network: more levels or more blocks per level, starting as the same function.

Growing follows the network's parts, not its parameter names: encoder stage i of the trained network goes
to encoder stage i of the grown one, each decoder's stage j to stage j + (added levels) (decoder stages run
deepest first), and the adaptor, heads and instance MLPs are copied whole. New residual blocks start with
the scale of their last batch norm at ``NEW_BLOCK_SCALE`` and its shift at zero (the block adds almost
nothing, yet still gets gradients through its ReLU), and a new deepest level starts with a zero projection
into each decoder. The grown network therefore starts as (almost) the trained one, and training then uses
the extra capacity. Used by ``phenoseg train --grow``.
"""

from __future__ import annotations

import torch
from torch import nn

from phenoseg.errors import PhenosegError
from phenoseg.models.instanseg import InstanSegNet

NEW_BLOCK_SCALE = 1e-3


def _copy(src: nn.Module, dst: nn.Module, what: str) -> None:
    try:
        dst.load_state_dict(src.state_dict())
    except RuntimeError as exc:
        raise PhenosegError(f"grow=: cannot place the trained {what} in the grown network ({exc})") from None


def _grow_stage(src: nn.Sequential, dst: nn.Sequential, what: str) -> None:
    """Copy the trained blocks of one stage; added blocks start near the identity."""
    for b, block in enumerate(dst):
        if b < len(src):
            _copy(src[b], block, f"{what} block {b}")
        else:
            block.start_near_identity(NEW_BLOCK_SCALE)


def grow_network(base: InstanSegNet, grown: InstanSegNet) -> InstanSegNet:
    """Copy ``base``'s weights into ``grown`` (same widths as a prefix, at least as many blocks per level,
    the same targets and decoder groups) and make every added part start as (almost) an identity."""
    bw, gw = list(base.config.widths), list(grown.config.widths)
    if gw[: len(bw)] != bw or grown.config.blocks_per_level < base.config.blocks_per_level:
        raise PhenosegError(
            f"grow=: widths {gw} must start with the trained model's {bw}, and blocks per level "
            f"({grown.config.blocks_per_level}) must be at least its {base.config.blocks_per_level}"
        )
    if base.config.target_groups() != grown.config.target_groups():
        raise PhenosegError("grow=: the grown network must keep the trained model's targets and decoder groups")
    extra = len(gw) - len(bw)
    with torch.no_grad():
        _copy(base.adaptor, grown.adaptor, "channel adaptor")
        for i, stage in enumerate(base.encoder.stages):
            _grow_stage(stage, grown.encoder.stages[i], f"encoder level {i}")
        # a new deepest encoder level keeps its default init: its zero projection hides it
        for src_dec, dst_dec in zip(base.decoders, grown.decoders):
            for j, dst in enumerate(dst_dec.stages):
                if j < extra:  # the decoder stage of a new level: nothing comes in, its blocks start as identities
                    dst.project.weight.zero_()
                    for block in dst.stage:
                        block.start_near_identity(NEW_BLOCK_SCALE)
                    continue
                src = src_dec.stages[j - extra]
                _copy(src.project, dst.project, f"decoder projection {j - extra}")
                _grow_stage(src.stage, dst.stage, f"decoder level {j - extra}")
        _copy(base.heads, grown.heads, "heads")
        _copy(base.mlps, grown.mlps, "instance MLPs")
    return grown
