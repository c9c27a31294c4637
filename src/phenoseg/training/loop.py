"""The one training loop: time / step budget, learning-rate drop, validation cadence, best model, resumable
checkpoints. What is trained is an *objective* (InstanSeg now; the classifier and positivity next):

- ``net``: the module whose parameters are optimised and checkpointed;
- ``rng`` (numpy) and ``generator`` (torch): the objective's random state, checkpointed with it;
- ``step(step) → {name: loss tensor}``: one optimisation batch; the loop back-propagates ``losses["loss"]``;
- ``validate() → (score, details)``: higher is better;
- ``save_best(details, step)``: write the model folder (called when validation improves);
- ``batch_size``: samples per step (for the record).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from phenoseg.errors import PhenosegError
from phenoseg.training.checkpoint import load_checkpoint, save_checkpoint

WEIGHTS_FILE = "weights.safetensors"


class Objective(Protocol):
    """What :func:`run_loop` trains (see the module docstring)."""

    net: torch.nn.Module
    rng: np.random.Generator
    generator: torch.Generator
    batch_size: int

    def step(self, step: int) -> dict[str, torch.Tensor]: ...

    def validate(self) -> tuple[float, dict]: ...

    def save_best(self, details: dict, step: int) -> None: ...


@dataclass
class LoopOptions:
    """Budget and schedule of one run."""

    out: Path
    minutes: float | None = None
    max_steps: int | None = None
    resume: bool = False
    val_minutes: float = 5.0
    lr: float = 1e-3
    lr_drop_at: float = 0.8  # fraction of the time budget after which the learning rate drops
    lr_drop: float = 0.2
    quiet: bool = False


def checkpoint_dir(out: Path) -> Path:
    """Where a run in ``out`` keeps its resumable state."""
    return Path(out) / "checkpoint"


def check_resumable(out: Path) -> None:
    """A clear error when ``--resume`` finds nothing to resume."""
    if not (checkpoint_dir(out) / "state.json").is_file():
        raise PhenosegError(f"resume=: no checkpoint in {checkpoint_dir(out)}")


def run_loop(objective: Objective, optimizer: torch.optim.Optimizer, opts: LoopOptions) -> dict:
    """Train until the budget is spent, validating every ``val_minutes`` and at the end; the best validation
    score's model is saved by the objective. Returns the run's record (steps, elapsed time, history)."""
    out = Path(opts.out)
    ckpt = checkpoint_dir(out)
    info = {"step": 0, "elapsed_s": 0.0, "best_score": -1.0, "crops_seen": 0, "history": []}
    if opts.resume:
        check_resumable(out)
        info = load_checkpoint(ckpt, objective.net, optimizer, objective.rng, objective.generator)
    budget_s = opts.minutes * 60 if opts.minutes else None
    start = time.time() - info["elapsed_s"]
    last_val = time.time()
    # the bar counts what bounds the run: seconds of the time budget (with its ETA), else steps
    timed = budget_s is not None
    bar = tqdm(total=int(budget_s) if timed else opts.max_steps, initial=int(info["elapsed_s"]) if timed
               else info["step"], disable=opts.quiet, unit="s" if timed else "step", dynamic_ncols=True,
               desc="training", bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
               if timed else None)
    run_loss = None
    shown = int(info["elapsed_s"])

    def advance() -> None:
        nonlocal shown
        if timed:
            now = min(int(time.time() - start), int(budget_s))
            bar.update(max(0, now - shown))
            shown = max(shown, now)
        else:
            bar.update(1)

    def validate_and_save() -> None:
        score, details = objective.validate()
        info["history"].append({"step": info["step"], "elapsed_s": round(time.time() - start, 1), "val": details})
        if score > info["best_score"] or not (out / WEIGHTS_FILE).is_file():
            info["best_score"] = score
            objective.save_best(details, info["step"])
        info["elapsed_s"] = time.time() - start
        save_checkpoint(ckpt, objective.net, optimizer, info, objective.rng, objective.generator)
        bar.set_postfix(step=info["step"], loss=f"{run_loss or 0:.3f}", val=f"{score:.3f}",
                        best=f"{info['best_score']:.3f}")
        objective.net.train()

    objective.net.train()
    while True:
        elapsed = time.time() - start
        if (budget_s is not None and elapsed >= budget_s) or (opts.max_steps is not None
                                                              and info["step"] >= opts.max_steps):
            break
        if budget_s is not None and elapsed > opts.lr_drop_at * budget_s:
            for g in optimizer.param_groups:
                g["lr"] = opts.lr * opts.lr_drop
        losses = objective.step(info["step"])
        loss = losses["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        info["step"] += 1
        info["crops_seen"] += objective.batch_size
        lv = float(loss.detach())
        run_loss = lv if run_loss is None else 0.98 * run_loss + 0.02 * lv
        advance()
        best = f"{info['best_score']:.3f}" if info["best_score"] >= 0 else "–"
        bar.set_postfix(step=info["step"], loss=f"{run_loss:.3f}", best=best, refresh=False)
        if time.time() - last_val > opts.val_minutes * 60:
            validate_and_save()
            last_val = time.time()
    validate_and_save()
    bar.close()
    return info
