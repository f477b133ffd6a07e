"""Train one classifier on cached uint8 tensors with the shared recipe (:mod:`flare.classify.recipe`); infer
probabilities (optionally averaged over the 8 rot90 × flip views) and penultimate features.

Methods differ only in their training images, except ``online`` methods (``Raw_HR_online``), which draw a random
rot90 × flip view of each sample with mirror-pair labels swapped. Synthetic rows (``synthetic``, a mask over the
pool) take the preset's loss weight, label smoothing and batch-share cap (:mod:`flare.classify.recipe`).
Seeds: ``torch.manual_seed`` (by the caller) for the initial weights and a NumPy generator derived from the seed
for the sample order and the views, so the same data + preset + seed gives the same weights on CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from rich.progress import Progress

from flare.classify.presets import BenchmarkPreset
from flare.classify.recipe import (BestOnVal, Budget, budget, cap_synthetic_share, class_weights, epoch_order,
                                   random_views, training_loss, warmup_cosine)
from flare.core.progress import make_progress
from flare.core.seeding import derive_seed
from flare.core.symmetry import VIEWS, apply_view, average_views, views_mirror

__all__ = ["TrainResult", "train_classifier", "infer", "infer_views", "to_input", "apply_views"]

MEAN, STD = 0.5, 0.5  # images are mapped to [-1, 1] (the Lite models' own preprocessing too); saved in model.json


def to_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, 3, S, S)`` → normalised float tensor on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return (tensor.float() / 255.0 - MEAN) / STD


def apply_views(images: np.ndarray, labels: np.ndarray, views: np.ndarray,
                mirror_perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image under its own view; a mirrored view takes its label's mirror pair."""
    out = np.empty_like(images)
    for view in np.unique(views):
        chosen = views == view
        out[chosen] = apply_view(images[chosen], int(view))
    return out, np.where(views_mirror(views), mirror_perm[labels], labels)


@dataclass
class TrainResult:
    model: torch.nn.Module
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    recipe: dict = field(default_factory=dict)
    synthetic_share: float = 0.0  # of the samples trained on, the share that were synthetic rows


@torch.no_grad()
def infer(model: torch.nn.Module, images: np.ndarray, batch_size: int = 256, device: torch.device | None = None,
          with_features: bool = False, description: str | None = None,
          progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax probabilities ``(N, C)`` and, if asked, penultimate features ``(N, D)``.

    Pass ``progress`` to show the bar inside an enclosing display (rich allows one live display at a time).
    """
    device = device or next(model.parameters()).device
    model.eval()
    probabilities, features = [], []
    owner = progress is None
    if owner:
        progress = make_progress()
        progress.start()
    try:
        task = progress.add_task(description or "evaluate", total=len(images))
        for start in range(0, len(images), batch_size):
            batch = to_input(images[start:start + batch_size], device)
            pooled = model.forward_head(model.forward_features(batch), pre_logits=True)
            logits = model.get_classifier()(pooled)
            probabilities.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            if with_features:
                features.append(pooled.float().flatten(1).cpu().numpy())
            progress.advance(task, len(batch))
        if not owner:
            progress.remove_task(task)
    finally:
        if owner:
            progress.stop()
    num_classes = model.get_classifier().out_features if hasattr(model.get_classifier(), "out_features") else 0
    probs = np.concatenate(probabilities) if probabilities else np.zeros((0, num_classes), np.float32)
    feats = (np.concatenate(features) if features else np.zeros((0, 0), np.float32)) if with_features else None
    return probs, feats


def infer_views(model: torch.nn.Module, images: np.ndarray, mirror_perm: np.ndarray | None,
                batch_size: int = 256, device: torch.device | None = None, with_features: bool = False,
                description: str | None = None, progress: Progress | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`infer`, averaged over the 8 rot90 × flip views when ``mirror_perm`` is given (test-time
    augmentation; a mirrored view's probabilities are permuted back first). Features are the identity view's."""
    probabilities, features = infer(model, images, batch_size, device, with_features, description, progress)
    if mirror_perm is None or not len(images):
        return probabilities, features
    others = ((view, infer(model, apply_view(images, view), batch_size, device, False,
                           f"{description or 'evaluate'} (view {view})", progress)[0]) for view in VIEWS[1:])
    return average_views([(0, probabilities), *others], mirror_perm), features


def recipe_record(preset: BenchmarkPreset, plan: Budget, weights: np.ndarray | None,
                  online: bool, classes: Sequence[str]) -> dict:
    """What a cell's JSON and the report say about how it was trained."""
    return {"steps": plan.total_steps, "steps_per_epoch": plan.steps_per_epoch, "epochs": plan.epochs,
            "samples_per_epoch": plan.samples_per_epoch, "batch_size": preset.batch_size,
            "learning_rate": preset.learning_rate, "weight_decay": preset.weight_decay,
            "schedule": f"linear warm-up {preset.warmup_fraction:.0%}, cosine to 0", "optimizer": "AdamW",
            "class_balance": preset.class_balance, "train_mode": preset.train_mode,
            "class_weights": ({c: round(float(w), 4) for c, w in zip(classes, weights)} if weights is not None else None),
            "online_views": "rot90 x flip, mirror pairs swapped" if online else None,
            "model_choice": "best val macro-F1", "patience": preset.patience, "tta": preset.tta,
            "synthetic_weight": preset.synthetic_weight, "synthetic_label_smoothing": preset.synthetic_label_smoothing,
            "synthetic_batch_share": preset.synthetic_batch_share}


def train_classifier(model: torch.nn.Module, train_images: np.ndarray, train_labels: np.ndarray,
                     val_images: np.ndarray, val_labels: np.ndarray, num_classes: int, preset: BenchmarkPreset,
                     seed: int, device: torch.device | None = None, description: str = "train", *,
                     real_train_images: int | None = None, mirror_perm: np.ndarray | None = None,
                     online: bool = False, classes: Sequence[str] = (),
                     synthetic: np.ndarray | None = None) -> TrainResult:
    """Fit ``model`` (already seeded and built); returns it holding the weights of its best val epoch.

    ``real_train_images`` sets the epoch size (default: the pool size); ``online`` draws a random view per
    sample (needs ``mirror_perm``, :func:`flare.core.symmetry.mirror_permutation`); ``synthetic`` marks the
    pool's synthetic rows (None: none is)."""
    device = device or torch.device("cpu")
    model.to(device)
    rng = np.random.default_rng(derive_seed(seed, "classify-order"))
    plan = budget(preset, real_train_images or len(train_images))
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset.learning_rate, weight_decay=preset.weight_decay)
    scheduler = warmup_cosine(optimizer, plan.total_steps, preset.warmup_fraction)
    weights = class_weights(train_labels, num_classes) if preset.class_balance == "weighted-loss" else None
    loss_weight = torch.tensor(weights, dtype=torch.float32, device=device) if weights is not None else None
    if online and mirror_perm is None:
        raise ValueError("online views need the mirror permutation of the classes")
    synthetic = np.zeros(len(train_labels), bool) if synthetic is None else np.asarray(synthetic, bool)
    tracker = BestOnVal(model, preset.patience)
    started = time.perf_counter()
    step = seen = synthetic_seen = 0
    with make_progress() as progress:
        epoch_task = progress.add_task(f"{description}: epochs", total=plan.epochs)
        for epoch in range(1, plan.epochs + 1):
            epoch_started = time.perf_counter()
            model.train()
            order = epoch_order(rng, train_labels, plan.samples_per_epoch, preset.class_balance == "sampler")
            order = cap_synthetic_share(rng, order, train_labels, synthetic, preset.synthetic_batch_share,
                                        preset.batch_size)
            views = random_views(rng, len(order)) if online else None
            batch_task = progress.add_task(f"  epoch {epoch}", total=len(order))
            losses = []
            for start in range(0, len(order), preset.batch_size):
                index = order[start:start + preset.batch_size]
                if len(index) < 2 and len(order) > 1:
                    continue  # BatchNorm cannot train on a batch of one
                images, labels = train_images[index], train_labels[index]
                if views is not None:
                    images, labels = apply_views(images, labels, views[start:start + len(index)], mirror_perm)
                inputs = to_input(images, device)
                targets = torch.from_numpy(labels.astype(np.int64)).to(device)
                is_synthetic = synthetic[index]
                loss = training_loss(model(inputs), targets, loss_weight, torch.from_numpy(is_synthetic).to(device),
                                     preset.synthetic_weight, preset.synthetic_label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                seen, synthetic_seen = seen + len(index), synthetic_seen + int(is_synthetic.sum())
                losses.append(float(loss.detach()))
                progress.advance(batch_task, len(index))
            progress.remove_task(batch_task)
            train_seconds = time.perf_counter() - epoch_started
            probs, _ = infer(model, val_images, preset.eval_batch_size, device, description=f"  val {epoch}",
                             progress=progress)
            progress.advance(epoch_task)
            if tracker.record(epoch, step, float(scheduler.get_last_lr()[0]), losses, probs, val_labels,
                              train_seconds, time.perf_counter() - epoch_started):
                break
    tracker.restore()
    model.eval()
    return TrainResult(model, tracker.best_epoch, tracker.history, time.perf_counter() - started,
                       recipe_record(preset, plan, weights, online, classes), synthetic_seen / max(1, seen))
