"""CPU inference speed-ups that keep outputs equal: channels-last memory and a frozen TorchScript graph."""

from __future__ import annotations

import torch
from torch import nn

from phenoseg.models.instanseg import InstanSegNet


class _ChannelsLast(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.contiguous(memory_format=torch.channels_last)).contiguous()


def frozen_network(net: InstanSegNet) -> nn.Module:
    """The network (adaptor, encoder, decoders, heads) as a frozen channels-last TorchScript module (BatchNorm
    folded).

    Falls back to the eager module if scripting fails (for example on an unusual custom build).
    """
    net = net.eval()
    try:
        wrapped = _ChannelsLast(net).to(memory_format=torch.channels_last)
        return torch.jit.freeze(torch.jit.script(wrapped))
    except Exception:  # pragma: no cover - depends on the torch build
        return net


def count_flops(net: nn.Module, height: int, width: int, channels: int) -> float:
    """Multiply-accumulates × 2 of every convolution for one (channels, height, width) input."""
    total = 0.0

    def hook(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += 2.0 * output.numel() * (module.in_channels // module.groups) * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, channels, height, width))
    for h in handles:
        h.remove()
    return total
