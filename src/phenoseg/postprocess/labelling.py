"""Merging seed masks by IoU and building the label map (method §1.4), as batched tensor operations."""

from __future__ import annotations

import torch


def connected_components(n: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Component id (the smallest member index) of each of ``n`` nodes joined by edges (a[i], b[i])."""
    comp = torch.arange(n, device=a.device)
    if a.numel() == 0:
        return comp
    changed = True
    while changed:
        m = torch.minimum(comp[a], comp[b])
        new = comp.scatter_reduce(0, a, m, "amin").scatter_reduce(0, b, m, "amin")
        new = new[new]
        changed = not torch.equal(new, comp)
        comp = new
    return comp


def _overlap_pairs(pix: torch.Tensor, owner: torch.Tensor, n: int, max_shift: int) -> torch.Tensor:
    """Keys lo·n + hi for every pixel shared by two seed masks (one key per shared pixel)."""
    order = torch.argsort(pix)
    pix_s = pix[order]
    own_s = owner[order]
    keys: list[torch.Tensor] = []
    for s in range(1, max_shift + 1):
        if pix_s.numel() <= s:
            break
        same = pix_s[s:] == pix_s[:-s]
        if not bool(same.any()):
            break
        a = own_s[:-s][same]
        b = own_s[s:][same]
        keys.append(torch.minimum(a, b) * n + torch.maximum(a, b))
    if len(keys) == 0:
        return torch.zeros(0, dtype=torch.long, device=pix.device)
    return torch.cat(keys)


def drop_fragments(flat: torch.Tensor, height: int, width: int, one_piece_fill: float = 0.6) -> torch.Tensor:
    """Keep only the largest 4-connected piece of every label in a flat (H·W,) label map.

    Speed-up (a heuristic): labels filling at least ``one_piece_fill`` of their bounding box are taken to
    be one piece, since a fragment away from its object enlarges the box; connectivity is computed only for
    the other labels. ``one_piece_fill`` above 1 checks every label and keeps one piece of equal largest
    ones (exact, as :func:`~phenoseg.postprocess.fragments.keep_largest_parts`).
    """
    fg = (flat > 0).nonzero()[:, 0]
    if fg.numel() == 0:
        return flat
    lab = flat[fg]
    n_lab = int(lab.max()) + 1
    ys = fg // width
    xs = fg % width
    big = height * width
    y0 = torch.full((n_lab,), big, dtype=torch.long, device=flat.device).scatter_reduce(0, lab, ys, "amin")
    y1 = torch.full((n_lab,), -1, dtype=torch.long, device=flat.device).scatter_reduce(0, lab, ys, "amax")
    x0 = torch.full((n_lab,), big, dtype=torch.long, device=flat.device).scatter_reduce(0, lab, xs, "amin")
    x1 = torch.full((n_lab,), -1, dtype=torch.long, device=flat.device).scatter_reduce(0, lab, xs, "amax")
    area = torch.bincount(lab, minlength=n_lab)
    box = (y1 - y0 + 1).clamp_min(1) * (x1 - x0 + 1).clamp_min(1)
    suspicious = area.float() < one_piece_fill * box.float()
    fg = fg[suspicious[lab]]
    n = fg.numel()
    if n == 0:
        return flat
    total = height * width
    node = torch.full((total,), -1, dtype=torch.long, device=flat.device)
    ids = torch.arange(n, device=flat.device)
    node[fg] = ids
    lab = flat[fg]
    right = fg + 1
    ok_r = ((fg % width) < width - 1) & (flat[right.clamp(max=total - 1)] == lab)
    down = fg + width
    ok_d = (down < total) & (flat[down.clamp(max=total - 1)] == lab)
    a = torch.cat([ids[ok_r], ids[ok_d]])
    b = torch.cat([node[right[ok_r]], node[down[ok_d]]])
    comp = connected_components(n, a, b)
    size = torch.bincount(comp, minlength=n)[comp]
    n_lab = int(lab.max()) + 1
    best = torch.zeros(n_lab, dtype=torch.long, device=flat.device).scatter_reduce(0, lab, size, "amax")
    out = flat.clone()
    if one_piece_fill <= 1.0:  # equal largest pieces all stay (the same whatever the image's orientation)
        out[fg[size < best[lab]]] = 0
        return out
    # exact: of equal largest pieces the first in raster order (a piece's id is its first pixel's index),
    # as keep_largest_parts on numpy labels
    is_best = size == best[lab]
    first = torch.full((n_lab,), n, dtype=torch.long, device=flat.device)
    first = first.scatter_reduce(0, lab[is_best], comp[is_best], "amin")
    out[fg[comp != first[lab]]] = 0
    return out


def one_piece_per_object(labels: torch.Tensor) -> torch.Tensor:
    """(…, H, W) label maps with every object reduced to its largest 4-connected piece (exact: the rule of
    :func:`~phenoseg.postprocess.fragments.keep_largest_parts`, in torch, for the scripted pipeline)."""
    h, w = labels.shape[-2], labels.shape[-1]
    maps = labels.reshape(-1, h * w).long()
    out = torch.stack([drop_fragments(m, h, w, 2.0) for m in maps.unbind(0)]) if maps.shape[0] > 0 else maps
    return out.view(labels.shape).to(labels.dtype)


def merge_and_label(
    owner: torch.Tensor,
    pix: torch.Tensor,
    probs: torch.Tensor,
    seed_values: torch.Tensor,
    height: int,
    width: int,
    mask_threshold: float,
    iou_threshold: float,
    min_area: int,
    cleanup: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn scored (seed, pixel) pairs into one label map.

    owner (M,) seed index of each pair, pix (M,) flat pixel index, probs (M,) membership probability;
    seed_values (K,) sorted strongest first. A seed's mask is its pairs with probability ≥
    ``mask_threshold``; seeds whose masks overlap with IoU > ``iou_threshold`` are merged; each pixel
    takes the label of the seed with the highest probability; with ``cleanup`` only the largest piece of
    each object is kept; objects under ``min_area`` px are dropped; labels are 1..N.
    Returns (labels (H, W) int32, scores (N,) = the strongest seed value of each object, strength (H, W)
    float = the highest membership probability of any seed at each pixel: the sub-pixel evidence that
    :func:`~phenoseg.preprocess.upsample_labels` uses to place outlines on a finer grid).
    """
    n = seed_values.shape[0]
    flat = torch.zeros(height * width, dtype=torch.long, device=probs.device)
    strength = torch.zeros(height * width, dtype=probs.dtype, device=probs.device)
    if probs.numel() > 0:
        strength = strength.scatter_reduce(0, pix, probs, "amax")
    strength = strength.view(height, width)
    keep_pair = probs >= mask_threshold
    owner = owner[keep_pair]
    pix = pix[keep_pair]
    p = probs[keep_pair]
    if n == 0 or owner.numel() == 0:
        return (flat.view(height, width).to(torch.int32),
                torch.zeros(0, dtype=seed_values.dtype, device=probs.device), strength)
    areas = torch.bincount(owner, minlength=n)
    keys = _overlap_pairs(pix, owner, n, 8)
    if keys.numel() > 0:
        uniq, inter = torch.unique(keys, return_counts=True)
        a = uniq // n
        b = uniq % n
        iou = inter.float() / (areas[a] + areas[b] - inter).float()
        keep = iou > iou_threshold
        comp = connected_components(n, a[keep], b[keep])
    else:
        comp = torch.arange(n, device=probs.device)

    best = torch.full((height * width,), -1.0, dtype=p.dtype, device=p.device)
    best = best.scatter_reduce(0, pix, p, "amax")
    winner = p >= best[pix]
    flat[pix[winner]] = comp[owner[winner]] + 1
    if cleanup:
        flat = drop_fragments(flat, height, width)

    counts = torch.bincount(flat, minlength=n + 1)
    keep_l = counts >= max(min_area, 1)
    keep_l[0] = False
    new_ids = torch.cumsum(keep_l.long(), 0) * keep_l.long()
    labels = new_ids[flat].view(height, width).to(torch.int32)
    scores = seed_values[keep_l.nonzero()[:, 0] - 1]
    return labels, scores, strength
