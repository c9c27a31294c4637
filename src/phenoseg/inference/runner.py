"""Running the network on a normalised image at model resolution, and decoding its output."""

from __future__ import annotations

import numpy as np
import torch

from phenoseg.models.instanseg import InstanSegNet
from phenoseg.postprocess.decoder import InstanceDecoder
from phenoseg.postprocess.pairing import paired_targets
from phenoseg.preprocess import pad_to_multiple


def build_decoder(net: InstanSegNet) -> InstanceDecoder:
    """The postprocessing module of a network, with the thresholds of its config."""
    c = net.config
    return InstanceDecoder(net.mlps, c.dim_positional, c.dim_conditional, c.offset_range, c.coord_scale,
                           [c.postprocess_for(t) for t in c.targets], pair=paired_targets(c.targets))


@torch.no_grad()
def network_output(
    net: InstanSegNet, image: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
    runner=None,
) -> torch.Tensor:
    """Raw maps (1, T·C, H, W) for a normalised (C, H, W) image; padding to the stride is undone.

    ``runner`` is an equivalent faster module for ``net`` (see :mod:`phenoseg.inference.optimise`).
    """
    t = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None].to(device)
    padded, (h, w) = pad_to_multiple(t, net.stride, minimum=net.stride * 2)
    return (runner or net)(padded)[..., :h, :w]
