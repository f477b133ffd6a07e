"""Classification metrics (scikit-learn), macro collapsing of fine probabilities, and seed aggregation."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

__all__ = ["classification_metrics", "macro_f1", "collapse_probabilities", "mean_std", "paired_differences"]


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
