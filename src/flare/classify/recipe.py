"""The parts of the training recipe every backbone and mode shares: step budget, warm-up + cosine schedule,
class weights or a class-balanced sample order, online rot90 × flip views (mirror pairs swapped), and the
treatment of synthetic rows (a loss weight, label smoothing, a cap on their share of a batch).

Seeds: a NumPy generator derived from the cell seed draws the sample order and the views, so the same data +
preset + seed gives the same batches on every run.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from flare.classify.presets import BenchmarkPreset
from flare.metrics.classification import macro_f1

__all__ = ["Budget", "budget", "class_weights", "epoch_order", "cap_synthetic_share", "training_loss", "warmup_cosine",
           "random_views", "BestOnVal"]


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


class _Cycle:
    """Members in seeded permutations, one after another: each member once before any member twice."""

    def __init__(self, rng: np.random.Generator, members: np.ndarray):
        self.rng, self.members = rng, members
        self.queue, self.at = members[:0], 0

    def next(self) -> int:
        if self.at == len(self.queue):
            self.queue, self.at = self.rng.permutation(self.members), 0
        self.at += 1
        return int(self.queue[self.at - 1])


def cap_synthetic_share(rng: np.random.Generator, order: np.ndarray, labels: np.ndarray, synthetic: np.ndarray | None,
                        share: float | None, batch_size: int) -> np.ndarray:
    """``order`` with at most ``floor(share · len(batch))`` synthetic rows in each batch of ``batch_size``.

    A synthetic row over the cap is swapped for a real row of its class (that class's real rows in seeded
    permutations; any real row when the class has none), so each batch keeps its label mix, and with it the
    class balance and the class weights, while the epoch keeps its length. Where no batch is over the cap the
    order comes back unchanged and ``rng`` untouched: a pool without synthetic rows trains exactly as it would
    without a cap. A pool without real rows (Synth_Only) cannot be capped and comes back unchanged too.
    """
    if share is None or synthetic is None or not synthetic.any() or synthetic.all():
        return order
    capped = order.copy()
    real = np.flatnonzero(~synthetic)
    by_class: dict[int, _Cycle] = {}
    any_real = _Cycle(rng, real)
    for start in range(0, len(capped), batch_size):
        batch = capped[start:start + batch_size]  # a view: writes go into ``capped``
        cap = int(math.floor(share * len(batch) + 1e-9))
        for position in np.flatnonzero(synthetic[batch])[cap:]:
            label = int(labels[batch[position]])
            if label not in by_class:
                members = real[labels[real] == label]
                by_class[label] = _Cycle(rng, members) if len(members) else any_real
            batch[position] = by_class[label].next()
    return capped


def training_loss(logits: torch.Tensor, targets: torch.Tensor, class_weight: torch.Tensor | None,
                  synthetic: torch.Tensor | None = None, synthetic_weight: float = 1.0,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """Class-weighted cross-entropy in which a synthetic row counts ``synthetic_weight`` and has smoothed labels.

    Per row ``w(y) · s · CE(q, p)``: ``w`` the class weight (1 without), ``s`` 1 for a real row and
    ``synthetic_weight`` for a synthetic one, ``q`` the one-hot label, for a synthetic row smoothed to
    ``(1 - ε) · onehot + ε / C``; summed and divided by ``Σ w(y)`` (the class-weighted mean of ``F.cross_entropy``),
    so a synthetic row's part of the loss is linear in its weight. Written out because ``F.cross_entropy`` takes
    one smoothing for the whole batch (and spreads it by class weight); a batch without synthetic rows, or
    weight 1 with smoothing 0, goes to ``F.cross_entropy`` itself, so such training is bit for bit as before.
    """
    if synthetic is None or not bool(synthetic.any()) or (synthetic_weight == 1 and label_smoothing == 0):
        return F.cross_entropy(logits, targets, weight=class_weight)
    log_p = F.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, targets[:, None])[:, 0]
    is_synthetic = synthetic.to(log_p.dtype)
    smoothing = is_synthetic * label_smoothing
    per_row = (1 - smoothing) * nll - smoothing * log_p.mean(1)
    row_weight = class_weight[targets] if class_weight is not None else torch.ones_like(nll)
    scale = 1 + is_synthetic * (synthetic_weight - 1)
    return (row_weight * scale * per_row).sum() / row_weight.sum()


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
