"""Score a classifier's probabilities on the fine task and on the macro task (collapsing fine outputs)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from flare.core.taxonomy import Taxonomy
from flare.metrics.classification import classification_metrics, collapse_probabilities

__all__ = ["score_probabilities", "macro_probabilities"]


def macro_probabilities(probabilities: np.ndarray, output_classes: Sequence[str], task: str,
                        taxonomy: Taxonomy) -> np.ndarray:
    """Macro-class probabilities (columns = ``taxonomy.macro_classes``) from a fine or a macro model."""
    if task == "macro":
        order = [list(output_classes).index(m) for m in taxonomy.macro_classes]
        return probabilities[:, order]
    return collapse_probabilities(probabilities, output_classes, taxonomy.fine_to_macro, taxonomy.macro_classes)


def score_probabilities(probabilities: np.ndarray, output_classes: Sequence[str], task: str, taxonomy: Taxonomy,
                        fine_true: Sequence[str | None], macro_true: Sequence[str],
                        with_predictions: bool = False) -> dict[str, Any]:
    """``{"fine": metrics (fine models, rows with a fine truth), "macro": metrics (every row)}``.

    ``with_predictions`` adds each task's ``rows`` (indices scored), ``true`` and ``predicted`` labels, which
    the benchmark keeps for bootstrap intervals over test images."""
    out: dict[str, Any] = {}
    if task == "fine":
        fine_pred = [output_classes[i] for i in probabilities.argmax(1)] if len(probabilities) else []
        keep = [i for i, label in enumerate(fine_true) if label]
        if keep:
            true, predicted = [fine_true[i] for i in keep], [fine_pred[i] for i in keep]
            out["fine"] = classification_metrics(true, predicted, taxonomy.fine_classes)
            if with_predictions:
                out["fine"].update(rows=keep, true=true, predicted=predicted)
    macro = macro_probabilities(probabilities, output_classes, task, taxonomy)
    macro_pred = [taxonomy.macro_classes[i] for i in macro.argmax(1)] if len(macro) else []
    out["macro"] = classification_metrics(list(macro_true), macro_pred, taxonomy.macro_classes)
    if with_predictions:
        out["macro"].update(rows=list(range(len(macro_pred))), true=list(macro_true), predicted=macro_pred)
    return out
