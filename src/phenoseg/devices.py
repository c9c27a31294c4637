"""Choosing the torch device (foundation: imports nothing of phenoseg but its errors)."""

from __future__ import annotations

import torch

from phenoseg.errors import PhenosegError


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' → CUDA, else MPS, else CPU; a device that is not there is a clear error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise PhenosegError(f"device='{name}': expected auto, cpu, cuda or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PhenosegError(f"device='{name}': no CUDA device available")
    return torch.device(name)
