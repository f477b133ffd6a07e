"""Data-efficiency curves: the benchmark at nested fractions of the real train origins, in one table.

Each fraction's run lives in its own work folder (``pipeline.py`` writes ``fractions/train-<f>/`` with stages
1–4 re-run on the subset, so no generator or SR model sees an image outside it); the full run is the work
folder itself. :func:`efficiency_summary` reads every fraction's ``benchmark/cells`` and writes, per method,
backbone and task, macro-F1 and accuracy against the number of real train images, with the seed spread and
95 % bootstrap intervals over test images, plus each fraction's comparison (FLARE against the best baseline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flare.classify.comparison import compare_methods, method_intervals
from flare.core.files import atomic_output
from flare.metrics.classification import mean_std

__all__ = ["efficiency_summary"]


def _cells(benchmark: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((benchmark / "cells").glob("*.json"))]


def efficiency_summary(benchmarks: dict[float, Path], out: Path, subset_seed: int) -> dict[str, Any]:
    """``benchmarks``: fraction → that fraction's benchmark folder; writes ``out`` (``efficiency.json``)."""
    curves: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    comparison: dict[str, Any] = {}
    n_real: dict[str, int] = {}
    for fraction in sorted(benchmarks):
        cells = _cells(benchmarks[fraction])
        if not cells:
            continue
        key = f"{fraction:g}"
        n_real[key] = int(cells[0].get("n_real_train", 0))
        comparison[key] = compare_methods(cells)
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for cell in cells:
            groups.setdefault((cell["method"], cell["backbone"], cell["task"]), []).append(cell)
        for (method, backbone, trained), members in sorted(groups.items()):
            for task in (["fine", "macro"] if trained == "fine" else ["macro"]):
                scored = [c["metrics"]["test"][task] for c in members if task in c["metrics"]["test"]]
                if not scored:
                    continue
                curves.setdefault((method, backbone, task), []).append({
                    "fraction": fraction, "n_real_train": n_real[key], "seeds": sorted(c["seed"] for c in members),
                    "macro_f1": mean_std([s["macro_f1"] for s in scored]),
                    "accuracy": mean_std([s["accuracy"] for s in scored]),
                    "ci95": method_intervals(members, task),
                })
    summary = {
        "fractions": sorted(benchmarks), "subset_seed": subset_seed, "n_real_train": n_real,
        "curves": [{"method": m, "backbone": b, "task": t, "points": points}
                   for (m, b, t), points in sorted(curves.items())],
        "comparison": comparison,
        "folders": {f"{f:g}": str(p) for f, p in sorted(benchmarks.items())},
    }
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=float))
    return summary
