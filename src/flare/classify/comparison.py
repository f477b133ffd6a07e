"""What the benchmark concludes: FLARE against the best baseline, with intervals, and the SR headroom.

- **Best baseline, chosen on val.** Among the baselines that ran (Raw_LR, Raw_HR, Raw_HR_online, Raw_Aug,
  T2I_Aug), the one with the highest mean *validation* macro-F1 over seeds; the test split is only scored.
- **Intervals.** Each method's test macro-F1 and accuracy get a 95 % bootstrap interval over test images (the
  seed-mean, the same resampled images for every seed), beside the seed spread; a difference gets the paired
  bootstrap (the same resampled images for both methods) and the number of seeds in which the method is ahead.
- **SR headroom** (where an Oracle_HR cell exists): Oracle_HR − Raw_LR on test, and the share of it that
  Raw_HR recovers, so a user sees whether stage 1 can matter on their data at all.
- **The headline**: one sentence a reader can quote, built from the numbers above.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flare.core.methods import BASELINES
from flare.metrics.classification import bootstrap_difference, bootstrap_interval, bootstrap_scores, mean_std

__all__ = ["test_predictions", "method_intervals", "compare_methods"]

N_BOOT = 2000


def test_predictions(cells: list[dict[str, Any]], task: str) -> tuple[list[str], list[list[str]]] | None:
    """``(true, [predicted per seed])`` of a group of cells (one method, backbone, trained task), aligned by
    test origin; None when the cells lack stored predictions or do not share their test images."""
    per_seed, truth = [], None
    for cell in sorted(cells, key=lambda c: c["seed"]):
        scored = cell["metrics"].get("test", {}).get(task, {})
        if "predicted" not in scored:
            return None
        origins = [cell["test_origins"][i] for i in scored["rows"]]
        order = np.argsort(origins, kind="stable")
        true = [scored["true"][i] for i in order]
        if truth is not None and true != truth:
            return None
        truth = true
        per_seed.append([scored["predicted"][i] for i in order])
    return (truth, per_seed) if truth is not None else None


def method_intervals(cells: list[dict[str, Any]], task: str) -> dict[str, Any]:
    found = test_predictions(cells, task)
    if found is None:
        return {}
    scores = bootstrap_scores(*found, n_boot=N_BOOT)
    return {metric: bootstrap_interval(values) for metric, values in scores.items()}


def _val_macro_f1(cells: list[dict[str, Any]], task: str) -> float:
    values = [c["metrics"]["val"][task]["macro_f1"] for c in cells if task in c["metrics"].get("val", {})]
    return float(np.mean(values)) if values else float("nan")


def _difference(method: list[dict[str, Any]], baseline: list[dict[str, Any]], task: str) -> dict[str, Any]:
    by_seed_a = {c["seed"]: c["metrics"]["test"][task]["macro_f1"] for c in method}
    by_seed_b = {c["seed"]: c["metrics"]["test"][task]["macro_f1"] for c in baseline}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    diffs = [by_seed_a[s] - by_seed_b[s] for s in seeds]
    out: dict[str, Any] = {"macro_f1": mean_std(diffs), "wins": int(sum(d > 0 for d in diffs)), "seeds": seeds}
    a = test_predictions([c for c in method if c["seed"] in seeds], task)
    b = test_predictions([c for c in baseline if c["seed"] in seeds], task)
    if a is not None and b is not None and a[0] == b[0]:
        out["ci95"] = bootstrap_difference(a[0], a[1], b[1], n_boot=N_BOOT)
    return out


def compare_methods(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (backbone, trained task, scored task) with the best baseline, FLARE − best, FLARE − each
    baseline, the SR headroom and a headline sentence."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for cell in cells:
        groups.setdefault((cell["backbone"], cell["task"]), {}).setdefault(cell["method"], []).append(cell)
    out = []
    for (backbone, trained), methods in sorted(groups.items()):
        scored_tasks = ["fine", "macro"] if trained == "fine" else ["macro"]
        for task in scored_tasks:
            entry: dict[str, Any] = {"backbone": backbone, "trained_task": trained, "task": task}
            val = {m: _val_macro_f1(c, task) for m, c in methods.items() if m in BASELINES}
            val = {m: v for m, v in val.items() if v == v}
            if val:
                best = max(sorted(val), key=lambda m: val[m])
                entry["best_baseline"] = {"method": best, "val_macro_f1": val[best], "val_scores": val}
            if "FLARE" in methods:
                entry["flare_vs"] = {m: _difference(methods["FLARE"], methods[m], task)
                                     for m in sorted(methods) if m in BASELINES}
            entry["headroom"] = _headroom(methods, task)
            entry["headline"] = _headline(entry, methods, task)
            out.append(entry)
    return out


def _mean_test(cells: list[dict[str, Any]], task: str) -> float:
    return float(np.mean([c["metrics"]["test"][task]["macro_f1"] for c in cells]))


def _headroom(methods: dict[str, list[dict[str, Any]]], task: str) -> dict[str, Any] | None:
    if not all(m in methods for m in ("Oracle_HR", "Raw_LR")):
        return None
    oracle, lr = _mean_test(methods["Oracle_HR"], task), _mean_test(methods["Raw_LR"], task)
    entry: dict[str, Any] = {"oracle_hr": oracle, "raw_lr": lr, "gap": oracle - lr}
    for method in ("Raw_HR", "Raw_HR_online"):
        if method in methods:
            value = _mean_test(methods[method], task)
            entry[method] = value
            entry[f"{method}_share"] = (value - lr) / (oracle - lr) if abs(oracle - lr) > 1e-9 else None
    return entry


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def _headline(entry: dict[str, Any], methods: dict[str, list[dict[str, Any]]], task: str) -> str:
    if "best_baseline" not in entry or "FLARE" not in methods:
        return ""
    best = entry["best_baseline"]["method"]
    diff = entry["flare_vs"].get(best)
    if diff is None:
        return ""
    mean = diff["macro_f1"]["mean"]
    seeds = len(diff["seeds"])
    interval = diff.get("ci95", {}).get("macro_f1")
    span = f" (95 % interval {_points(interval['low'])} to {_points(interval['high'])})" if interval else ""
    if interval and interval["low"] > 0:
        verdict = "FLARE beats"
    elif interval and interval["high"] < 0:
        verdict = "FLARE is worse than"
    else:
        verdict = "FLARE does not measurably beat"
    return (f"{verdict} the best baseline ({best}, chosen on val) on {task} macro-F1: {_points(mean)} points"
            f"{span}, ahead in {diff['wins']} of {seeds} seed{'s' if seeds != 1 else ''}"
            f" ({entry['backbone']}).")
