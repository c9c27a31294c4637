"""Windowed membership: per-seed features [Q_ij − Q_k, E_ij] in a square window around each seed."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def relative_grid(window: int, dim_positional: int, coord_scale: float, device: torch.device) -> torch.Tensor:
    """O_ij − O_k for every window position: (Dp, w, w); channels beyond the first two are zero."""
    half = window // 2
    r = (torch.arange(window, device=device, dtype=torch.float32) - half) * coord_scale
    grid = torch.zeros(dim_positional, window, window, device=device)
    grid[0] = r[:, None].expand(window, window)
    if dim_positional > 1:
        grid[1] = r[None, :].expand(window, window)
    return grid


def window_features(
    offsets: torch.Tensor,
    conditional: torch.Tensor,
    centres: torch.Tensor,
    grid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of every pixel in the window of every seed.

    offsets (Dp, H, W), conditional (De, H, W), centres (K, 2) long (y, x), grid (Dp, w, w) from
    :func:`relative_grid`. Returns (features (K, w, w, Dp + De), inside (K, w, w) bool: window pixel
    lies inside the image).
    """
    window = grid.shape[-1]
    half = window // 2
    height, width = offsets.shape[-2], offsets.shape[-1]
    maps = torch.cat([offsets, conditional], 0)
    padded = F.pad(maps, [half, half, half, half])
    steps = torch.arange(window, device=centres.device)
    ys = centres[:, 0:1] + steps[None, :]
    xs = centres[:, 1:2] + steps[None, :]
    win = padded[:, ys[:, :, None], xs[:, None, :]]
    dp = offsets.shape[0]
    own = offsets[:, centres[:, 0], centres[:, 1]]
    rel = win[:dp] - own[:, :, None, None] + grid[:, None]
    feats = torch.cat([rel, win[dp:]], 0).permute(1, 2, 3, 0)
    iy = ys - half
    ix = xs - half
    inside = ((iy >= 0) & (iy < height))[:, :, None] & ((ix >= 0) & (ix < width))[:, None, :]
    return feats, inside


def candidate_pairs(
    foreground: torch.Tensor, centres: torch.Tensor, window: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (seed, foreground pixel) pair with the pixel inside the seed's window.

    foreground (H, W) bool, centres (K, 2). Returns (owner (M,), flat pixel index (M,), dy (M,), dx (M,))
    with dy, dx the pixel's offset from its seed. Only these pairs are scored, so the cost follows the
    foreground area, not the window area.
    """
    half = window // 2
    h, w = foreground.shape
    padded = F.pad(foreground.to(torch.uint8), [half, half, half, half])
    steps = torch.arange(window, device=centres.device)
    ys = centres[:, 0:1] + steps[None, :]
    xs = centres[:, 1:2] + steps[None, :]
    wp = w + 2 * half
    flat = padded.reshape(-1)
    idx = ys[:, :, None] * wp + xs[:, None, :]
    hits = flat[idx.reshape(-1)].view(idx.shape).nonzero()
    owner = hits[:, 0]
    dy = hits[:, 1] - half
    dx = hits[:, 2] - half
    pix = (centres[owner, 0] + dy) * w + (centres[owner, 1] + dx)
    return owner, pix, dy, dx


def pair_features(
    offsets: torch.Tensor,
    conditional: torch.Tensor,
    centres: torch.Tensor,
    owner: torch.Tensor,
    pix: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    coord_scale: float,
) -> torch.Tensor:
    """[Q_ij − Q_k, E_ij] for listed (seed, pixel) pairs → (M, Dp + De); same features as
    :func:`window_features`."""
    dp = offsets.shape[0]
    w = offsets.shape[-1]
    p_flat = offsets.reshape(dp, -1)
    own = p_flat[:, centres[:, 0] * w + centres[:, 1]]
    rel = p_flat[:, pix] - own[:, owner]
    rel0 = rel[0] + dy.to(rel.dtype) * coord_scale
    parts = [rel0[None]]
    if dp > 1:
        parts.append((rel[1] + dx.to(rel.dtype) * coord_scale)[None])
    if dp > 2:
        parts.append(rel[2:])
    parts.append(conditional.reshape(conditional.shape[0], -1)[:, pix])
    return torch.cat(parts, 0).t()
