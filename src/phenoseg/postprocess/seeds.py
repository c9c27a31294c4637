"""Seeds: local maxima of the seed map above a threshold, with a hard cap on their number."""

from __future__ import annotations

import torch


def max_seeds_for(height: int, width: int, per_mpx: int) -> int:
    """The seed cap for an image of this size (at least 64)."""
    return max(64, int(height * width * per_mpx / 1_000_000))


def _shift_max(x: torch.Tensor, step: int, dim: int) -> torch.Tensor:
    """max(x[i], x[i + step]) along ``dim`` (the tail keeps x)."""
    n = x.shape[dim]
    if step >= n:
        return x
    head = torch.maximum(x.narrow(dim, 0, n - step), x.narrow(dim, step, n - step))
    return torch.cat([head, x.narrow(dim, n - step, step)], dim)


def _run_max(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Max over the run x[i : i + length] along ``dim`` by doubling (log2(length) elementwise maxima)."""
    covered = 1
    while covered < length:
        step = min(covered, length - covered)
        x = _shift_max(x, step, dim)
        covered += step
    return x


def _box_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Max over the centred (2r+1)² box (clipped at the borders), separable and shift-based."""
    k = 2 * radius + 1
    lo = torch.full_like(x, float("-inf"))
    for dim in (0, 1):
        n = x.shape[dim]
        pad = lo.narrow(dim, 0, min(radius, n))
        padded = torch.cat([pad, x, pad], dim)
        x = _run_max(padded, k, dim).narrow(dim, 0, n)
    return x


def find_seeds(
    seed_map: torch.Tensor, threshold: float, radius: int, max_seeds: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local maxima of ``seed_map`` (H, W) in a (2r+1)² window that exceed ``threshold``.

    Of equal maxima closer than the radius (plateaus) one is kept. Returns (coords (K, 2) long as
    (y, x), values (K,)), strongest first, at most ``max_seeds``.
    """
    is_seed = (seed_map >= _box_max(seed_map, radius)) & (seed_map > threshold)
    h, w = seed_map.shape
    # tie-break by a position code that is unique inside any window (exact in float32)
    rows = torch.arange(h, device=seed_map.device) % 64
    cols = torch.arange(w, device=seed_map.device) % 64
    code = (rows[:, None] * 64 + cols[None, :] + 1).to(torch.float32)
    cand = torch.where(is_seed, code, torch.zeros_like(code))
    is_seed = is_seed & (cand == _box_max(cand, radius))
    coords = is_seed.nonzero()
    values = seed_map[coords[:, 0], coords[:, 1]]
    order = torch.argsort(values, descending=True)
    if order.numel() > max_seeds:
        order = order[:max_seeds]
    return coords[order], values[order]
