"""Seeded selection rules of the combination stage: which augmentation and synthesis *types* (or samples) enter.

Rule ``types`` (the original work; α = 0.5, β = 1.0): the distinct types of a branch are sorted by name and
shuffled by ``numpy_rng(seed, "combine", branch)``; the first ``n = floor(fraction × n_types + 0.5)`` are kept
(round half up, so α = 0.5 of 5 types keeps 3), and every row of a kept type enters.
Rule ``samples`` (a plain per-sample ratio): the branch's rows are sorted by id and shuffled the same way; the
first ``floor(fraction × n_rows + 0.5)`` enter.
Per-class target (optional, after either rule): the real train images of a class always enter; the selected
rows of that class are shuffled (seeded per class) and only as many as reach ``target`` images are kept
(classes already at or above the target get none; rare classes get the most).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Sequence

from flare.core.errors import ConfigError
from flare.core.seeding import numpy_rng

__all__ = ["row_type", "take_count", "choose_types", "choose_samples", "fill_to_target"]


def row_type(row: dict[str, Any]) -> str:
    """A row's type within its branch: ``params.type`` when present (synthesis), else its ``operation``."""
    try:
        params = json.loads(row.get("params") or "{}") if isinstance(row.get("params"), str) else (row.get("params") or {})
    except json.JSONDecodeError:
        params = {}
    return str(params.get("type") or row.get("operation") or row.get("stage"))


def take_count(fraction: float, total: int) -> int:
    """``floor(fraction × total + 0.5)``: round half up, so the count never depends on banker's rounding."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"combine: fraction {fraction} is not within 0..1")
    return min(total, int(math.floor(fraction * total + 0.5)))


def choose_types(types: Sequence[str], fraction: float, seed: int, branch: str) -> list[str]:
    """The kept types of a branch (sorted), by the documented seeded rule."""
    ordered = sorted(set(types))
    order = numpy_rng(seed, "combine", branch).permutation(len(ordered))
    return sorted(ordered[i] for i in order[:take_count(fraction, len(ordered))])


def choose_samples(ids: Sequence[str], fraction: float, seed: int, branch: str) -> list[str]:
    """The kept row ids of a branch (sorted), by the per-sample rule."""
    ordered = sorted(set(ids))
    order = numpy_rng(seed, "combine", branch).permutation(len(ordered))
    return sorted(ordered[i] for i in order[:take_count(fraction, len(ordered))])


def fill_to_target(real_counts: dict[str, int], candidates: Sequence[dict[str, Any]], target: int,
                   seed: int) -> list[dict[str, Any]]:
    """Keep, per class, just enough candidate rows to bring the class to ``target`` train images."""
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in candidates:
        by_class[row["label"]].append(row)
    kept = []
    for label in sorted(by_class):
        rows = sorted(by_class[label], key=lambda r: r["id"])
        need = max(0, target - real_counts.get(label, 0))
        order = numpy_rng(seed, "combine", "target", label).permutation(len(rows))
        kept += [rows[i] for i in sorted(order[:need])]
    return kept
