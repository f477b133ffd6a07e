"""The parts of the training recipe every backbone and mode shares: step budget, warm-up + cosine schedule,
class weights or a class-balanced sample order, and online rot90 × flip views (mirror pairs swapped).

Seeds: a NumPy generator derived from the cell seed draws the sample order and the views, so the same data +
preset + seed gives the same batches on every run.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from flare.classify.presets import BenchmarkPreset
from flare.metrics.classification import macro_f1

__all__ = ["Budget", "budget", "class_weights", "epoch_order", "warmup_cosine", "random_views", "BestOnVal"]


@dataclass(frozen=True)
class Budget:
    samples_per_epoch: int
    steps_per_epoch: int
    epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def budget(preset: BenchmarkPreset, real_train_images: int) -> Budget:
    """Steps per epoch from the preset's ``samples_per_epoch`` or, by default, the run's real train size (so
    every method at a given data size gets the same number of optimiser steps)."""
    per_epoch = max(1, preset.samples_per_epoch or real_train_images)
    return Budget(per_epoch, max(1, -(-per_epoch // preset.batch_size)), preset.epochs)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``n / (C_present · n_c)`` per class (scikit-learn's "balanced"); 0 for classes absent from the pool."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def epoch_order(rng: np.random.Generator, labels: np.ndarray, count: int, balanced: bool) -> np.ndarray:
    """``count`` pool indices for one epoch.

    Unbalanced: whole permutations of the pool back to back, cut at ``count`` (a pool smaller than an epoch is
    cycled). Balanced: each class drawn equally often, each class's images cycled in their own permutations.
    """
    pool = len(labels)
    if not balanced:
        repeats = -(-count // pool)
        return np.concatenate([rng.permutation(pool) for _ in range(repeats)])[:count]
    classes = np.unique(labels)
    per_class = rng.multinomial(count, np.full(len(classes), 1.0 / len(classes)))
    picks = []
    for label, n in zip(classes, per_class):
        members = np.flatnonzero(labels == label)
        repeats = -(-int(n) // len(members)) if n else 0
        cycled = np.concatenate([rng.permutation(members) for _ in range(repeats)]) if repeats else members[:0]
        picks.append(cycled[:n])
    return rng.permutation(np.concatenate(picks))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over ``warmup_fraction`` of the steps, then cosine decay to 0 at ``total_steps``."""
    warmup = max(1, int(round(total_steps * warmup_fraction))) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def random_views(rng: np.random.Generator, count: int) -> np.ndarray:
    """One of the 8 rot90 × flip views per sample (:mod:`flare.core.symmetry`)."""
    return rng.integers(0, 8, size=count)


@dataclass
class BestOnVal:
    """Model choice and early stopping on val macro-F1, and the val curve: :meth:`record` each epoch's val
    probabilities; it keeps a copy of ``module``'s best weights and says when ``patience`` epochs passed
    without a better score; :meth:`restore` loads the best weights back."""

    module: torch.nn.Module
    patience: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -1.0
    best_epoch: int = 0
    _best_state: dict | None = None
    _stale: int = 0

    def record(self, epoch: int, step: int, lr: float, losses: list[float], val_probabilities: np.ndarray,
               val_labels: np.ndarray, train_seconds: float, seconds: float) -> bool:
        """Append the epoch to the curve; True when training should stop."""
        predicted = val_probabilities.argmax(1) if len(val_probabilities) else np.zeros(0, int)
        score = macro_f1(val_labels, predicted)
        self.history.append({"epoch": epoch, "step": step, "lr": lr,
                             "train_loss": float(np.mean(losses)) if losses else float("nan"),
                             "val_macro_f1": score,
                             "val_accuracy": float(np.mean(predicted == val_labels)) if len(val_labels) else 0.0,
                             "train_seconds": train_seconds, "seconds": seconds})
        if score > self.best_score:
            self.best_score, self.best_epoch, self._stale = score, epoch, 0
            self._best_state = copy.deepcopy(self.module.state_dict())
            return False
        self._stale += 1
        return self._stale >= self.patience

    def restore(self) -> None:
        if self._best_state is not None:
            self.module.load_state_dict(self._best_state)
