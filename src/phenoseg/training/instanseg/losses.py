"""InstanSeg losses (method §1.5): seed BCE (+ L1 after warm-up), Lovász hinge (Dice warm start)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def lovasz_hinge(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Batched Lovász hinge (Berman et al. 2018): logits, targets, valid (N, P) → mean loss.

    Ignored pixels (valid False) are sorted last with zero error, so they change nothing.
    """
    signs = 2.0 * targets - 1.0
    errors = 1.0 - logits * signs
    errors = torch.where(valid > 0, errors, torch.full_like(errors, -1e4))
    gt = targets * valid
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    gt_sorted = torch.gather(gt, 1, perm)
    gts = gt_sorted.sum(1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(1)
    union = gts + (1.0 - gt_sorted).cumsum(1)
    jaccard = 1.0 - intersection / union.clamp_min(1e-6)
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (F.relu(errors_sorted) * grad).sum(1).mean()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Soft Dice on sigmoid probabilities, per row, ignoring invalid pixels."""
    p = torch.sigmoid(logits) * valid
    t = targets * valid
    inter = (p * t).sum(1)
    return (1.0 - (2 * inter + 1.0) / (p.sum(1) + t.sum(1) + 1.0)).mean()


def instance_seeds(seed_prob: torch.Tensor, labels: torch.Tensor, max_instances: int, generator: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to ``max_instances`` random instances per image of ``labels`` (B, H, W), each with the pixel of
    highest predicted seed probability inside it; one vectorised pass over the batch (no per-image loop, so
    few device synchronisations on a GPU).

    Returns (image index (K,), instance id (K,), centre (K, 2) as (y, x)), all long on the labels' device.
    """
    dev = labels.device
    b, h, w = labels.shape
    lab = labels.clamp_min(0).long()
    span = int(lab.max()) + 1
    gid = (lab + torch.arange(b, device=dev)[:, None, None] * span).reshape(-1)
    fg = lab.reshape(-1) > 0
    n = b * span
    present = torch.zeros(n, dtype=torch.bool, device=dev)
    present[gid[fg]] = True
    ids = present.nonzero()[:, 0]
    if ids.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty, torch.zeros(0, 2, dtype=torch.long, device=dev)
    img = ids // span
    # random order inside each image, then keep the first max_instances of every image
    key = img.double() + torch.rand(ids.numel(), generator=generator, dtype=torch.float64).to(dev)
    order = torch.argsort(key)
    ids, img = ids[order], img[order]
    counts = torch.bincount(img, minlength=b)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(ids.numel(), device=dev) - starts[img]
    keep = rank < max_instances
    ids, img = ids[keep], img[keep]
    # the highest-probability pixel of each instance (first one on ties)
    s = seed_prob.detach().reshape(-1)
    best = torch.full((n,), -1.0, device=dev, dtype=s.dtype).scatter_reduce(0, gid[fg], s[fg], "amax")
    pos = torch.arange(gid.numel(), device=dev)
    is_best = fg & (s >= best[gid])
    first = torch.full((n,), gid.numel(), dtype=torch.long, device=dev)
    first = first.scatter_reduce(0, gid[is_best], pos[is_best], "amin")
    where = first[ids] - img * (h * w)
    return img, ids - img * span, torch.stack([where // w, where % w], 1)


def batch_window_features(offsets: torch.Tensor, conditional: torch.Tensor, img: torch.Tensor,
                          centres: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Features (K, w, w, Dp + De) of the window around each centre, from maps (B, D, H, W) of a batch."""
    window = grid.shape[-1]
    half = window // 2
    dp = offsets.shape[1]
    padded = F.pad(torch.cat([offsets, conditional], 1), [half, half, half, half])
    steps = torch.arange(window, device=centres.device)
    ys = centres[:, 0:1] + steps[None]
    xs = centres[:, 1:2] + steps[None]
    win = padded[img[:, None, None], :, ys[:, :, None], xs[:, None, :]]  # (K, w, w, D)
    own = offsets[img, :, centres[:, 0], centres[:, 1]]  # (K, Dp)
    rel = win[..., :dp] - own[:, None, None, :] + grid.permute(1, 2, 0)[None]
    return torch.cat([rel, win[..., dp:]], -1)


def instanseg_loss(
    seed_logits: torch.Tensor,
    offsets: torch.Tensor,
    conditional: torch.Tensor,
    labels: torch.Tensor,
    seed_targets: torch.Tensor,
    mlp: torch.nn.Module,
    grid: torch.Tensor,
    max_instances: int,
    warm: bool,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed loss and instance loss of one target for a batch. labels (B, H, W) long, −1 = ignore.

    The instance loss is the mean over up to ``max_instances`` sampled instances per image.
    Returns (seed_loss, instance_loss); images without annotation for this target should not be passed.
    """
    valid = labels >= 0
    prob = torch.sigmoid(seed_logits)
    vf = valid.float()
    # BCE against the soft distance target throughout (its optimum is the conditional mean, so the map
    # cannot collapse to the all-background median that L1 alone drifts to early on); L1 added after warm-up
    seed_px = F.binary_cross_entropy_with_logits(seed_logits, seed_targets, reduction="none")
    if not warm:
        seed_px = seed_px + (prob - seed_targets).abs()
    seed_loss = (seed_px * vf).sum() / vf.sum().clamp_min(1.0)

    img, ids, centres = instance_seeds(prob, labels, max_instances, generator)
    k = ids.numel()
    if k == 0:
        return seed_loss, seed_loss * 0.0
    half = grid.shape[-1] // 2
    logits = mlp(batch_window_features(offsets, conditional, img, centres, grid)).reshape(k, -1)
    lab_pad = F.pad(labels.float(), [half, half, half, half], value=-1.0)
    steps = torch.arange(grid.shape[-1], device=labels.device)
    ys = centres[:, 0:1] + steps[None]
    xs = centres[:, 1:2] + steps[None]
    lab_win = lab_pad[img[:, None, None], ys[:, :, None], xs[:, None, :]].reshape(k, -1)
    target = (lab_win == ids[:, None].float()).float()
    ok = (lab_win >= 0).float()  # outside the image the padding is −1: ignored like unannotated pixels
    inst = dice_loss(logits, target, ok) if warm else lovasz_hinge(logits, target, ok)
    return seed_loss, inst
