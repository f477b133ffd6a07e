"""Classification metrics (scikit-learn), macro collapsing of fine probabilities, and seed aggregation."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

__all__ = ["classification_metrics", "macro_f1", "collapse_probabilities", "mean_std", "paired_differences",
           "bootstrap_scores", "bootstrap_interval", "bootstrap_difference"]


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1 (over the classes present in ``y_true``), per-class F1, confusion.

    The confusion matrix is indexed by ``classes`` (rows: true, columns: predicted).
    """
    y_true, y_pred, classes = list(y_true), list(y_pred), list(classes)
    if not y_true:
        return {"n": 0, "accuracy": float("nan"), "balanced_accuracy": float("nan"), "macro_f1": float("nan"),
                "per_class_f1": {}, "support": {}, "confusion": [], "classes": classes}
    present = [c for c in classes if c in set(y_true)]
    per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    support = {c: int(sum(1 for t in y_true if t == c)) for c in classes}
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class) if support[c] > 0},
        "support": support,
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "classes": classes,
    }


def macro_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Macro-F1 over the classes present in ``y_true`` (0 for an empty set): what model choice on val uses."""
    present = sorted(set(np.asarray(y_true).tolist()))
    if not present:
        return 0.0
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def collapse_probabilities(probabilities: np.ndarray, fine_classes: Sequence[str], fine_to_macro: dict[str, str],
                           macro_classes: Sequence[str]) -> np.ndarray:
    """Macro probabilities = the sum of their fine classes' probabilities (scoring macro by collapsing fine)."""
    out = np.zeros((len(probabilities), len(macro_classes)), dtype=np.float64)
    index = {m: i for i, m in enumerate(macro_classes)}
    for j, fine in enumerate(fine_classes):
        out[:, index[fine_to_macro[fine]]] += probabilities[:, j]
    return out


def mean_std(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray([v for v in values if v == v], dtype=np.float64)
    if not len(array):
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0, "n": int(len(array))}


def paired_differences(scores: dict[str, dict[int, float]], baseline: str) -> dict[str, dict[str, float]]:
    """``method - baseline`` per shared seed: mean, std and the number of seeds where the method wins."""
    out: dict[str, dict[str, float]] = {}
    base = scores.get(baseline, {})
    for method, per_seed in scores.items():
        if method == baseline:
            continue
        seeds = sorted(set(per_seed) & set(base))
        diffs = [per_seed[s] - base[s] for s in seeds]
        summary = mean_std(diffs)
        summary["wins"] = int(sum(d > 0 for d in diffs))
        out[method] = summary
    return out


def bootstrap_scores(true: Sequence[str], predictions: Sequence[Sequence[str]], n_boot: int = 2000,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of the seed-mean over ``n_boot`` resamples of the test images.

    ``predictions`` holds one prediction list per seed, aligned with ``true``. Each resample draws the same
    image indices for every seed, so the spread reflects which test images were drawn; the seed spread is
    reported beside it. Macro-F1 is over the classes present in each resample (as :func:`macro_f1`).
    Hand-written with ``np.bincount`` because scikit-learn's ``f1_score`` costs ~1 ms a call, 2,000 × seeds
    × methods calls per summary; this is the same formula, vectorised over resamples.
    """
    classes = sorted(set(true) | {p for seed in predictions for p in seed})
    index = {c: i for i, c in enumerate(classes)}
    truth = np.array([index[c] for c in true])
    preds = np.array([[index[c] for c in seed] for seed in predictions])  # (S, n)
    n, k = len(truth), len(classes)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    t = truth[draws]  # (B, n)
    offsets = (np.arange(n_boot) * k)[:, None]
    support = np.bincount((t + offsets).ravel(), minlength=n_boot * k).reshape(n_boot, k)
    present = support > 0
    f1s, accuracies = [], []
    for seed_preds in preds:
        p = seed_preds[draws]
        hits = t == p
        tp = np.bincount((t + offsets)[hits], minlength=n_boot * k).reshape(n_boot, k)
        predicted = np.bincount((p + offsets).ravel(), minlength=n_boot * k).reshape(n_boot, k)
        denominator = support + predicted
        f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
        f1s.append((f1 * present).sum(1) / present.sum(1))
        accuracies.append(hits.mean(1))
    return {"macro_f1": np.mean(f1s, axis=0), "accuracy": np.mean(accuracies, axis=0)}


def bootstrap_interval(values: np.ndarray, level: float = 0.95) -> dict[str, float]:
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return {"low": float(low), "high": float(high), "level": level}


def bootstrap_difference(true: Sequence[str], method: Sequence[Sequence[str]], baseline: Sequence[Sequence[str]],
                         n_boot: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """95 % interval of ``method − baseline`` (seed means) over paired resamples of the same test images."""
    a = bootstrap_scores(true, method, n_boot, seed)
    b = bootstrap_scores(true, baseline, n_boot, seed)
    return {metric: bootstrap_interval(a[metric] - b[metric]) for metric in ("accuracy", "macro_f1")}
