"""The InstanSeg training objective: seed + instance losses summed over targets; validation by F1^μ."""

from __future__ import annotations

import numpy as np
import torch

from phenoseg.evaluation.datasets import evaluate_samples, selection_score
from phenoseg.models.instanseg import InstanSegNet, split_target
from phenoseg.models.zoo import save_model
from phenoseg.postprocess.membership import relative_grid
from phenoseg.training.instanseg.losses import instanseg_loss

INSTANCE_WEIGHT = 1.5


class InstanSegObjective:
    """One optimisation batch of augmented crops → losses; validation on held-out samples (see
    :mod:`phenoseg.training.loop`). A target whose labels a crop lacks (−1 everywhere) adds nothing for it."""

    def __init__(self, net: InstanSegNet, next_batch, val_samples: list, device: torch.device, out,
                 rng: np.random.Generator, generator: torch.Generator, batch_size: int, max_instances: int = 32,
                 warm_steps: int = 300) -> None:
        self.net, self.next_batch, self.val_samples = net, next_batch, val_samples
        self.device, self.out, self.rng, self.generator = device, out, rng, generator
        self.batch_size, self.max_instances, self.warm_steps = batch_size, max_instances, warm_steps
        cfg = net.config
        self.grids = [relative_grid(cfg.postprocess_for(t).window, cfg.dim_positional, cfg.coord_scale, device)
                      for t in cfg.targets]

    def step(self, step: int) -> dict[str, torch.Tensor]:
        """Seed and instance losses of every target on one batch; ``loss`` is their weighted sum."""
        cfg = self.net.config
        imgs, labs, seeds = self.next_batch()
        x = imgs.to(self.device, non_blocking=True)
        lab = labs.long().to(self.device, non_blocking=True)
        sd = seeds.to(self.device, non_blocking=True)
        if lab.dim() == 3:  # single-map samples
            lab, sd = lab[:, None], sd[:, None]
        raw = self.net(x)
        warm = step < self.warm_steps
        losses: dict[str, torch.Tensor] = {}
        total = raw.new_zeros(())
        for t, target in enumerate(cfg.targets):
            seed_logits, offsets, cond = split_target(raw, t, cfg.dim_positional, cfg.dim_conditional,
                                                      cfg.offset_range)
            ls, li = instanseg_loss(seed_logits, offsets, cond, lab[:, t], sd[:, t], self.net.mlps[t],
                                    self.grids[t], self.max_instances, warm, self.generator)
            losses[f"{target}_seed"], losses[f"{target}_instance"] = ls, li
            total = total + ls + INSTANCE_WEIGHT * li
        losses["loss"] = total
        return losses

    def validate(self) -> tuple[float, dict]:
        """Mean F1^μ over datasets and targets, at model resolution."""
        per = evaluate_samples(self.net, self.val_samples, self.device) if self.val_samples else {}
        return selection_score(per), per

    def save_best(self, details: dict, step: int) -> None:
        """The model folder, with its validation scores."""
        self.net.config.metrics = {"val_model_resolution": details, "step": step}
        save_model(self.net, self.out)
