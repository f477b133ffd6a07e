"""Frozen-backbone mode (a linear probe): penultimate features computed once per image and view, a linear head
trained on them with the shared recipe, then folded back into the backbone's classifier.

Why: on a 2-core CPU a frozen EfficientNet-Lite0 at 128 px costs one forward pass per image (≈130 images/s)
where fine-tuning costs ``epochs`` forward + backward passes, and linear probes of ImageNet features roughly
match full fine-tuning in galaxy-morphology work; the benchmark measures it against resnet18 from scratch.

The head is trained on standardised features (mean/std of the train pool) with AdamW, warm-up + cosine, class
weights or a balanced order, synthetic rows weighted, smoothed and capped per batch as in full training, model
choice on val macro-F1; the standardisation is folded into the weights, so
the result is an ordinary timm model that :func:`flare.classify.model_io.save_classifier` saves and
``flare predict`` runs. Online views and TTA use the cached features of the 8 rot90 × flip views.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from flare.classify.presets import BenchmarkPreset
from flare.classify.recipe import (BestOnVal, budget, cap_synthetic_share, class_weights, epoch_order, random_views,
                                   training_loss, warmup_cosine)
from flare.classify.train import TrainResult, infer, recipe_record
from flare.core.files import atomic_output
from flare.core.seeding import derive_seed
from flare.core.symmetry import VIEWS, apply_view, average_views, views_mirror

__all__ = ["FeatureCache", "train_linear_head", "head_probabilities"]


class FeatureCache:
    """``(keys, images, view) → (N, D)`` penultimate features of a frozen backbone, memoised per key and view in
    memory and per row set in ``cache_dir`` (keyed by the backbone's name and the image size too)."""

    def __init__(self, model: torch.nn.Module, backbone: str, size_px: int, cache_dir: str | Path | None,
                 device: torch.device, batch_size: int = 256):
        self.model, self.backbone, self.size_px = model.eval().to(device), backbone, size_px
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.device, self.batch_size = device, batch_size
        self._memory: dict[tuple[str, int], np.ndarray] = {}

    def features(self, keys: Sequence[str], images: np.ndarray, view: int = 0, description: str = "features") -> np.ndarray:
        keys = list(keys)
        file = None
        if self.cache_dir is not None and keys:
            digest = hashlib.sha256("\n".join([self.backbone, str(self.size_px), str(view), *keys]).encode()).hexdigest()[:20]
            file = self.cache_dir / f"features-{self.backbone}-{self.size_px}px-view{view}-{digest}.npz"
            if file.is_file() and not all((k, view) in self._memory for k in keys):
                with np.load(file) as stored:
                    for key, row in zip(keys, stored["features"]):
                        self._memory[(key, view)] = row
        missing = [i for i, k in enumerate(keys) if (k, view) not in self._memory]
        if missing:
            chosen = images[missing]
            _, feats = infer(self.model, apply_view(chosen, view) if view else chosen, self.batch_size, self.device,
                             with_features=True, description=f"{description} (view {view})")
            for i, row in zip(missing, feats):
                self._memory[(keys[i], view)] = row.astype(np.float32)
        if not keys:
            return np.zeros((0, 0), np.float32)
        stacked = np.stack([self._memory[(k, view)] for k in keys])
        if file is not None and (missing or not file.is_file()):
            with atomic_output(file) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, features=stacked)
        return stacked

    def all_views(self, keys: Sequence[str], images: np.ndarray, description: str = "features") -> np.ndarray:
        """``(8, N, D)``: the features of every rot90 × flip view."""
        return np.stack([self.features(keys, images, view, description) for view in VIEWS])


def head_probabilities(head: torch.nn.Linear, features: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = head(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
        return torch.softmax(logits, dim=1).numpy()


def tta_probabilities(head: torch.nn.Linear, view_features: np.ndarray, mirror_perm: np.ndarray) -> np.ndarray:
    """Mean over views of the head's probabilities, a mirrored view's permuted back (``view_features``: (8, N, D))."""
    return average_views(((view, head_probabilities(head, view_features[view])) for view in VIEWS), mirror_perm)


def train_linear_head(model: torch.nn.Module, train_features: np.ndarray, train_labels: np.ndarray,
                      val_features: np.ndarray, val_labels: np.ndarray, num_classes: int, preset: BenchmarkPreset,
                      seed: int, *, real_train_images: int, mirror_perm: np.ndarray | None = None,
                      online: bool = False, classes: Sequence[str] = (),
                      synthetic: np.ndarray | None = None) -> TrainResult:
    """Train ``model``'s classifier on frozen features and write it into the model (best val epoch).

    ``train_features`` is ``(N, D)``, or ``(8, N, D)`` when ``online`` (a random view per sample, mirrored views
    relabelled with ``mirror_perm``); ``synthetic`` marks the synthetic rows (None: none is). The head's initial
    weights come from ``torch.manual_seed`` (the caller)."""
    started = time.perf_counter()
    rng = np.random.default_rng(derive_seed(seed, "classify-order"))
    plan = budget(preset, real_train_images)
    pool = train_features.reshape(-1, train_features.shape[-1])
    mean, std = pool.mean(0), pool.std(0) + 1e-6
    scaled_train = (train_features - mean) / std
    scaled_val = torch.from_numpy(((val_features - mean) / std).astype(np.float32))
    head = torch.nn.Linear(train_features.shape[-1], num_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=preset.learning_rate, weight_decay=preset.weight_decay)
    scheduler = warmup_cosine(optimizer, plan.total_steps, preset.warmup_fraction)
    weights = class_weights(train_labels, num_classes) if preset.class_balance == "weighted-loss" else None
    loss_weight = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
    synthetic = np.zeros(len(train_labels), bool) if synthetic is None else np.asarray(synthetic, bool)
    tracker, step, seen, synthetic_seen = BestOnVal(head, preset.patience), 0, 0, 0
    for epoch in range(1, plan.epochs + 1):
        epoch_started = time.perf_counter()
        order = epoch_order(rng, train_labels, plan.samples_per_epoch, preset.class_balance == "sampler")
        order = cap_synthetic_share(rng, order, train_labels, synthetic, preset.synthetic_batch_share,
                                    preset.batch_size)
        views = random_views(rng, len(order)) if online else None
        losses = []
        for start in range(0, len(order), preset.batch_size):
            index = order[start:start + preset.batch_size]
            labels = train_labels[index]
            if views is not None:
                batch_views = views[start:start + len(index)]
                inputs = scaled_train[batch_views, index]
                labels = np.where(views_mirror(batch_views), mirror_perm[labels], labels)
            else:
                inputs = scaled_train[index]
            is_synthetic = synthetic[index]
            loss = training_loss(head(torch.from_numpy(inputs.astype(np.float32))),
                                 torch.from_numpy(labels.astype(np.int64)), loss_weight, torch.from_numpy(is_synthetic),
                                 preset.synthetic_weight, preset.synthetic_label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            seen, synthetic_seen = seen + len(index), synthetic_seen + int(is_synthetic.sum())
            losses.append(float(loss.detach()))
        with torch.no_grad():
            probs = torch.softmax(head(scaled_val), dim=1).numpy()
        seconds = time.perf_counter() - epoch_started
        if tracker.record(epoch, step, float(scheduler.get_last_lr()[0]), losses, probs, val_labels, seconds, seconds):
            break
    tracker.restore()
    _fold_into(model, head, mean, std)
    model.eval()
    return TrainResult(model, tracker.best_epoch, tracker.history, time.perf_counter() - started,
                       recipe_record(preset, plan, weights, online, classes), synthetic_seen / max(1, seen))


def _fold_into(model: torch.nn.Module, head: torch.nn.Linear, mean: np.ndarray, std: np.ndarray) -> None:
    """``W (f - μ) / σ + b`` = ``(W / σ) f + (b - (W / σ) μ)``: write the standardised head as the model's own."""
    classifier = model.get_classifier()
    with torch.no_grad():
        weight = head.weight / torch.from_numpy(std.astype(np.float32))
        classifier.weight.copy_(weight)
        classifier.bias.copy_(head.bias - weight @ torch.from_numpy(mean.astype(np.float32)))
