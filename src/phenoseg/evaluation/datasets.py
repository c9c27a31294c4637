"""Scoring a model on annotated samples at model resolution (training validation, threshold tuning)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from phenoseg.evaluation.matching import MatchCounts, match_counts, summarise
from phenoseg.inference.runner import build_decoder, network_output


def score_key(dataset: str, target: str, n_targets: int) -> str:
    """The key of one dataset's scores: the dataset's name, with ``/target`` for multi-target models."""
    return dataset if n_targets == 1 else f"{dataset}/{target}"


def network_outputs(net, samples, device) -> list[torch.Tensor]:
    """Raw maps of every sample, on the CPU (the network runs once; decoding can then be repeated)."""
    net.eval()
    return [network_output(net, s.image, device).cpu() for s in samples]


def evaluate_samples(net, samples, device, raws: list[torch.Tensor] | None = None, decoder=None,
                     targets: list[int] | None = None, **thresholds) -> dict[str, dict]:
    """Scores per dataset (and target), counts summed over images, at model resolution.

    Targets a sample has no labels for are skipped for that sample. ``decoder`` defaults to the model's own
    (decoded on the CPU, whatever the device); ``targets`` restricts scoring to these target indices."""
    decoder = decoder if decoder is not None else copy.deepcopy(build_decoder(net)).cpu()
    names = list(net.config.targets)
    wanted = range(len(names)) if targets is None else targets
    net.eval()
    counts: dict[str, MatchCounts] = {}
    for i, s in enumerate(samples):
        labels_all = s.labels if s.labels.ndim == 3 else s.labels[None]
        if not any((labels_all[t] >= 0).any() for t in wanted):
            continue
        raw = raws[i] if raws is not None else network_output(net, s.image, device).cpu()
        pred = decoder(raw, **thresholds)[0].cpu().numpy()
        for t in wanted:
            if not (labels_all[t] >= 0).any():
                continue
            key = score_key(s.dataset, names[t], len(names))
            counts[key] = counts.get(key, MatchCounts()) + match_counts(labels_all[t], pred[t])
    return {name: summarise(c) for name, c in counts.items()}


def selection_score(per_dataset: dict[str, dict]) -> float:
    """Mean over datasets (and targets) of F1^μ."""
    return float(np.mean([m["f1_mean"] for m in per_dataset.values()])) if per_dataset else 0.0
