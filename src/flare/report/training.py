"""How the benchmark's classifiers were trained: the recipe, where a cell departs from it, and the validation
curves, read from ``results.json["recipe"]`` and the cell files ``benchmark/cells/*.json``.

Every cell records ``recipe`` (steps, schedule, optimiser, class balance, online views, ...), ``history`` (one
entry per epoch: ``epoch``, ``val_macro_f1``, ...), ``best_epoch`` (the model kept) and ``epochs_run``. The
curves let a reader check that no run stopped before it converged; a cell whose best epoch is its last one,
with the whole budget spent, is flagged. Cells from older benchmarks lack these fields and are left out.
"""

from __future__ import annotations

from typing import Any

from flare.report.figures import val_curves_figure
from flare.report.tables import is_upper_bound, method_label, method_rank, table

__all__ = ["training_section", "backbone_origins", "RECIPE_LABELS"]

# The recipe's keys in reading order, with what a reader calls them; keys not listed follow, by name.
RECIPE_LABELS = {
    "steps": "optimiser steps (total)", "steps_per_epoch": "steps per epoch", "epochs": "epochs (at most)",
    "samples_per_epoch": "samples per epoch", "batch_size": "batch size", "learning_rate": "learning rate",
    "weight_decay": "weight decay", "schedule": "learning-rate schedule", "optimizer": "optimiser",
    "class_balance": "class balance", "train_mode": "training mode", "class_weights": "class weights",
    "online_views": "online views", "model_choice": "model kept", "patience": "early-stopping patience (epochs)",
    "tta": "test-time augmentation",
}


def _format(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value) or "none"
    return str(value)


def _keys(recipe: dict[str, Any]) -> list[str]:
    return [k for k in RECIPE_LABELS if k in recipe] + sorted(k for k in recipe if k not in RECIPE_LABELS)


def backbone_origins(cells: list[dict[str, Any]]) -> dict[str, str]:
    """``{backbone: initialised_from}`` from the cells (e.g. ``from scratch``); empty without cells."""
    found: dict[str, set[str]] = {}
    for c in cells:
        if c.get("initialised_from"):
            found.setdefault(str(c.get("backbone", "?")), set()).add(str(c["initialised_from"]))
    return {b: "; ".join(sorted(v)) for b, v in sorted(found.items())}


def _cells_phrase(names: list[str], by_method: dict[str, list[str]]) -> str:
    """``Raw_HR_online (all 2 cells)`` where a whole method shares a setting, else the cell names."""
    parts = []
    for method, members in sorted(by_method.items(), key=lambda kv: method_rank(kv[0])):
        chosen = [n for n in names if n in members]
        if not chosen:
            continue
        if len(chosen) == len(members):
            parts.append(f"{method_label(method)} (all {len(members)} cell{'s' if len(members) != 1 else ''})")
        else:
            parts.extend(chosen)
    return "; ".join(parts)


def _recipe(results: dict[str, Any], cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    recipe = results.get("recipe")
    if not isinstance(recipe, dict) or not recipe:
        return None
    with_recipe = [c for c in cells if isinstance(c.get("recipe"), dict)]
    weights = {(c.get("method", "?"), c.get("task", "?")): c["recipe"].get("class_weights") for c in with_recipe
               if c["recipe"].get("class_weights")}
    varied_weights = len({_format(w) for w in weights.values()}) > 1
    rows = [[RECIPE_LABELS.get(k, k),
             "per training set, see below" if k == "class_weights" and varied_weights else _format(recipe[k])]
            for k in _keys(recipe)]
    by_method: dict[str, list[str]] = {}
    for c in with_recipe:
        by_method.setdefault(str(c.get("method", "?")), []).append(str(c.get("cell", "?")))
    departures: dict[tuple[str, str], list[str]] = {}
    for c in with_recipe:
        for key in _keys({**recipe, **c["recipe"]}):
            if key == "class_weights":
                continue  # they follow each training set's class counts: their own table
            if c["recipe"].get(key) != recipe.get(key):
                departures.setdefault((key, _format(c["recipe"].get(key))), []).append(str(c.get("cell", "?")))
    differ = [[RECIPE_LABELS.get(key, key), value, _format(recipe.get(key)), _cells_phrase(names, by_method)]
              for (key, value), names in sorted(departures.items())]
    weights_table = None
    if varied_weights:
        classes = list(dict.fromkeys(k for w in weights.values() for k in w))
        ordered = sorted(weights.items(), key=lambda kv: (method_rank(kv[0][0]), kv[0][1]))
        weights_rows = [[method_label(m), task, *[f"{w[k]:.3f}" if isinstance(w.get(k), (int, float)) else "–"
                                                  for k in classes]] for (m, task), w in ordered]
        weights_table = table(["method", "trained task", *classes], weights_rows, "class-weights",
                              row_classes=["upper-bound" if is_upper_bound(m) else "" for (m, _), _ in ordered])
    return {"table": table(["setting", "value"], rows, "training-recipe"),
            "differences": table(["setting", "value in these cells", "value above", "cells"], differ,
                                 "recipe-differences") if differ else None,
            "class_weights": weights_table}


def _epochs_budget(cell: dict[str, Any], results: dict[str, Any]) -> int:
    recipe = cell.get("recipe") or results.get("recipe") or {}
    preset = cell.get("preset") or results.get("preset") or {}
    value = recipe.get("epochs") or preset.get("epochs") or 0
    return int(value) if isinstance(value, (int, float)) else 0


def _curves(results: dict[str, Any], cells: list[dict[str, Any]], origins: dict[str, str]) -> dict[str, Any] | None:
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for c in cells:
        if isinstance(c.get("history"), list) and c["history"]:
            groups.setdefault((str(c.get("backbone", "?")), str(c.get("task", "?"))), {}).setdefault(
                str(c.get("method", "?")), []).append(c)
    if not groups:
        return None
    figures, rows, classes = [], [], []
    for (backbone, task), methods in sorted(groups.items()):
        panels = []
        for method in sorted(methods, key=method_rank):
            members = sorted(methods[method], key=lambda c: c.get("seed", 0))
            lines = []
            for c in members:
                points = [h for h in c["history"] if isinstance(h.get("val_macro_f1"), (int, float))]
                lines.append({"label": f"seed {c.get('seed', '?')}", "epochs": [int(h["epoch"]) for h in points],
                              "values": [float(h["val_macro_f1"]) for h in points], "best_epoch": c.get("best_epoch")})
            budget = max(_epochs_budget(c, results) for c in members)
            panels.append({"title": method_label(method), "upper_bound": is_upper_bound(method),
                           "max_epochs": budget, "lines": lines})
            runs = [int(c.get("epochs_run") or len(c["history"])) for c in members]
            bests = [c.get("best_epoch") for c in members]
            unconverged = any(b == r and r >= budget for b, r in zip(bests, runs))
            rows.append([backbone, task, method_label(method), ", ".join(str(c.get("seed", "?")) for c in members),
                         ", ".join(str(b) for b in bests), ", ".join(str(r) for r in runs), budget,
                         "best at the last epoch of the budget: may not have converged" if unconverged
                         else "stopped early (no val gain within the patience)" if all(r < budget for r in runs)
                         else "best epoch before the last"])
            classes.append("warn" if unconverged else "upper-bound" if is_upper_bound(method) else "")
        origin = origins.get(backbone)
        title = f"{backbone}{f' ({origin})' if origin else ''}, trained on {task} labels"
        figures.append({"uri": val_curves_figure(panels, f"validation macro-F1 per epoch: {title}"),
                        "alt": f"val curves {backbone} {task}", "title": title})
    header = ["backbone", "trained task", "method", "seeds", "best epoch", "epochs run", "epochs budget", "reading"]
    return {"figures": figures, "table": table(header, rows, "val-curve-summary", row_classes=classes)}


def training_section(results: dict[str, Any], cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The recipe and the validation curves, or None when neither was recorded (older benchmarks)."""
    recipe = _recipe(results, cells)
    curves = _curves(results, cells, backbone_origins(cells))
    if recipe is None and curves is None:
        return None
    return {"recipe": recipe, "curves": curves}
