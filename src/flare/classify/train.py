"""Train one classifier on cached uint8 tensors, early-stopped on validation macro-F1; infer logits + features.

No online augmentation: methods differ only in their training images, which is what the benchmark measures.
Seeds: ``torch.manual_seed(seed)`` for the initial weights and a NumPy generator derived from the seed for the
per-epoch sample order, so the same data + preset + seed gives the same weights on CPU.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress

from flare.classify.presets import BenchmarkPreset
from flare.core.progress import make_progress
from flare.core.seeding import derive_seed
from flare.metrics.classification import macro_f1

__all__ = ["TrainResult", "train_classifier", "infer", "to_input"]

MEAN, STD = 0.5, 0.5  # images are mapped to [-1, 1]; recorded in every saved model's preprocessing config


def to_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, 3, S, S)`` → normalised float tensor on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return (tensor.float() / 255.0 - MEAN) / STD


@dataclass
class TrainResult:
    model: torch.nn.Module
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


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
    starts = range(0, len(images), batch_size)
    owner = progress is None
    if owner:
        progress = make_progress()
        progress.start()
    try:
        task = progress.add_task(description or "evaluate", total=len(images))
        for start in starts:
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


def _epoch_order(rng: np.random.Generator, pool: int, count: int) -> np.ndarray:
    """``count`` indices: whole permutations of the pool back to back, cut at ``count`` (a pool smaller than an
    epoch is cycled, so every method sees exactly the same number of images per epoch)."""
    repeats = -(-count // pool)
    return np.concatenate([rng.permutation(pool) for _ in range(repeats)])[:count]


def train_classifier(model: torch.nn.Module, train_images: np.ndarray, train_labels: np.ndarray,
                     val_images: np.ndarray, val_labels: np.ndarray, num_classes: int, preset: BenchmarkPreset,
                     seed: int, device: torch.device | None = None, description: str = "train") -> TrainResult:
    """Fit ``model`` (already seeded and built); returns it holding the weights of its best val epoch."""
    device = device or torch.device("cpu")
    model.to(device)
    rng = np.random.default_rng(derive_seed(seed, "classify-order"))
    per_epoch = preset.samples_per_epoch or len(train_images)
    steps_per_epoch = max(1, -(-per_epoch // preset.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset.learning_rate, weight_decay=preset.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=preset.learning_rate, pct_start=0.15,
                                                    total_steps=steps_per_epoch * preset.epochs)
    labels_tensor = torch.from_numpy(train_labels.astype(np.int64))
    best_score, best_state, best_epoch, stale = -1.0, None, 0, 0
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    with make_progress() as progress:
        epoch_task = progress.add_task(f"{description}: epochs", total=preset.epochs)
        for epoch in range(1, preset.epochs + 1):
            epoch_started = time.perf_counter()
            model.train()
            order = _epoch_order(rng, len(train_images), per_epoch)
            batch_task = progress.add_task(f"  epoch {epoch}", total=len(order))
            losses = []
            for start in range(0, len(order), preset.batch_size):
                index = np.sort(order[start:start + preset.batch_size])
                if len(index) < 2 and len(order) > 1:
                    continue  # BatchNorm cannot train on a batch of one
                inputs = to_input(train_images[index], device)
                targets = labels_tensor[index].to(device)
                loss = F.cross_entropy(model(inputs), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                progress.advance(batch_task, len(index))
            progress.remove_task(batch_task)
            train_seconds = time.perf_counter() - epoch_started
            probs, _ = infer(model, val_images, preset.eval_batch_size, device, description=f"  val {epoch}",
                             progress=progress)
            val_pred = probs.argmax(1) if len(probs) else np.zeros(0, int)
            score = macro_f1(val_labels, val_pred)
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                            "val_macro_f1": score, "val_accuracy": float(np.mean(val_pred == val_labels)) if len(val_labels) else 0.0,
                            "train_seconds": train_seconds, "seconds": time.perf_counter() - epoch_started})
            progress.advance(epoch_task)
            if score > best_score:
                best_score, best_epoch, stale = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= preset.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, best_epoch, history, time.perf_counter() - started)
