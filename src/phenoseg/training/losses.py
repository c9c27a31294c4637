"""InstanSeg losses (method §1.5): seed BCE (+ L1 after warm-up), Lovász hinge (Dice warm start)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from phenoseg.postprocess.membership import window_features


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
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """For up to ``max_instances`` random instances in ``labels`` (H, W), the pixel of highest predicted
    seed probability inside each. Returns (instance ids (K,), centres (K, 2) long)."""
    h, w = labels.shape
    flat = labels.reshape(-1).clamp_min(0).long()
    n = int(flat.max()) + 1 if flat.numel() else 1
    present = torch.bincount(flat, minlength=n)
    ids = (present > 0).nonzero()[:, 0]
    ids = ids[ids > 0]
    if ids.numel() == 0:
        return ids, torch.zeros(0, 2, dtype=torch.long)
    if ids.numel() > max_instances:
        ids = ids[torch.randperm(ids.numel(), generator=generator)[:max_instances]]
    s = seed_prob.detach().reshape(-1)
    best = torch.full((n,), -1.0).scatter_reduce(0, flat, s, "amax")
    is_best = (s >= best[flat]) & (flat > 0)
    pos = torch.arange(flat.numel())
    first = torch.full((n,), flat.numel(), dtype=torch.long)
    first = first.scatter_reduce(0, flat[is_best], pos[is_best], "amin")
    where = first[ids]
    return ids, torch.stack([where // w, where % w], 1)


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

    half = grid.shape[-1] // 2
    inst_losses = []
    for i in range(labels.shape[0]):
        ids, centres = instance_seeds(prob[i], labels[i], max_instances, generator)
        if ids.numel() == 0:
            continue
        feats, inside = window_features(offsets[i], conditional[i], centres, grid)
        logits = mlp(feats).squeeze(-1)
        lab_pad = F.pad(labels[i][None].float(), [half, half, half, half], value=-1.0)[0]
        steps = torch.arange(grid.shape[-1])
        ys = centres[:, 0:1] + steps[None]
        xs = centres[:, 1:2] + steps[None]
        lab_win = lab_pad[ys[:, :, None], xs[:, None, :]]
        target = (lab_win == ids[:, None, None].float()).float()
        ok = inside & (lab_win >= 0)
        k = ids.numel()
        lf = logits.reshape(k, -1)
        tf = target.reshape(k, -1)
        vfw = ok.reshape(k, -1).float()
        inst_losses.append(dice_loss(lf, tf, vfw) if warm else lovasz_hinge(lf, tf, vfw))
    inst = torch.stack(inst_losses).mean() if inst_losses else seed_loss * 0.0
    return seed_loss, inst
