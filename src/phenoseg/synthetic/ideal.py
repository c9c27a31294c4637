"""Test oracles: a model whose instance MLP decodes "ideal" network outputs of known labels exactly."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi

from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import InstanSegNet, build_instanseg
from phenoseg.training.instanseg.targets import seed_target


def ideal_model(window: int = 64) -> InstanSegNet:
    """A model whose instance MLP decodes :func:`ideal_output` exactly (1 conditional channel)."""
    cfg = ModelConfig(name="ideal", dim_positional=2, dim_conditional=1, mlp_hidden=8, widths=[8, 16])
    cfg.postprocess_for("nuclei").window = window
    cfg.postprocess_for("nuclei").min_area_px = 1
    net = build_instanseg(cfg)
    lin1, lin2, lin3 = net.mlps[0][0], net.mlps[0][2], net.mlps[0][4]
    with torch.no_grad():
        for lin in (lin1, lin2, lin3):
            lin.weight.zero_()
            lin.bias.zero_()
        for i, (ch, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1)]):
            lin1.weight[i, ch] = sign
        lin1.weight[4, 2] = 1.0
        lin2.weight[0, :4] = 4.0
        lin2.weight[0, 4] = 20.0
        lin3.weight[0, 0] = -1.0
        lin3.bias[0] = 5.0
    return net.eval()


def ideal_output(labels: np.ndarray, config: ModelConfig) -> torch.Tensor:
    """Raw network maps (1, 4, H, W) that a perfect network would give for ``labels``.

    Seed map: the normalised distance transform; positional offsets point every pixel to its object's
    centroid; the conditional channel marks background.
    """
    h, w = labels.shape
    lab = labels.astype(np.int64)
    prob = np.clip(seed_target(labels) * 0.98 + 0.01, 1e-4, 1 - 1e-4)
    seed_logit = np.log(prob / (1 - prob))
    n = int(lab.max())
    idx = np.arange(1, n + 1)
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    cnt = np.maximum(ndi.sum(np.ones_like(yy), lab, idx), 1)
    cy = np.concatenate([[0], ndi.sum(yy, lab, idx) / cnt])
    cx = np.concatenate([[0], ndi.sum(xx, lab, idx) / cnt])
    scale, rng_ = config.coord_scale, config.offset_range
    py = np.where(lab > 0, (cy[lab] - yy) * scale, 0.0)
    px = np.where(lab > 0, (cx[lab] - xx) * scale, 0.0)
    lim = rng_ / 2 * 0.999
    if np.abs(py).max() > lim or np.abs(px).max() > lim:
        raise ValueError("object too large for the positional offset range")

    def inv(p: np.ndarray) -> np.ndarray:
        q = p / rng_ + 0.5
        return np.log(q / (1 - q))

    cond = (lab == 0).astype(np.float64)
    raw = np.stack([seed_logit, inv(py), inv(px), cond])
    return torch.from_numpy(raw.astype(np.float32))[None]
