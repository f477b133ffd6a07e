"""Data-efficiency curves: test macro-F1 against the number of real train images, from
``benchmark/efficiency.json`` (written when ``benchmark.train_fractions`` holds fractions below 1).

The file holds ``fractions``, ``n_real_train`` (fraction key → images), ``curves`` (one per method, backbone and
scored task: ``points`` with ``fraction``, ``n_real_train``, ``macro_f1`` {mean, std, n} and ``ci95``) and
``comparison`` (fraction key → comparison entries as in ``results.json``). Fraction keys are strings
(``"0.25"``, ``"1"`` or ``"1.0"``): they are read as numbers, never matched as text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flare.report.figures import efficiency_figure
from flare.report.summary import task_label, verdict
from flare.report.tables import (format_difference, format_interval, is_upper_bound, method_label, method_rank,
                                 table)

__all__ = ["efficiency_section", "EFFICIENCY_FILE"]

EFFICIENCY_FILE = "benchmark/efficiency.json"
_TASKS = ("fine", "macro")


def _fraction(key: Any) -> float:
    try:
        return float(key)
    except (TypeError, ValueError):
        return float("nan")


def _percent(fraction: float) -> str:
    return f"{100 * fraction:g} %"


def _line(curve: dict[str, Any]) -> dict[str, Any] | None:
    points = sorted((p for p in curve.get("points") or [] if (p.get("macro_f1") or {}).get("n")),
                    key=lambda p: p.get("n_real_train", 0))
    points = [p for p in points if isinstance(p.get("n_real_train"), (int, float)) and p["n_real_train"] > 0]
    if not points:
        return None
    y = [p["macro_f1"]["mean"] for p in points]
    low, high = [], []
    for p, value in zip(points, y):
        interval = (p.get("ci95") or {}).get("macro_f1") or {}
        spread = p["macro_f1"].get("std", 0.0) if p["macro_f1"].get("n", 0) > 1 else 0.0
        low.append(interval.get("low", value - spread))
        high.append(interval.get("high", value + spread))
    method = str(curve.get("method", "?"))
    return {"label": method_label(method), "x": [p["n_real_train"] for p in points], "y": y, "low": low,
            "high": high, "upper_bound": is_upper_bound(method), "highlight": method == "FLARE"}


def _figures(summary: dict[str, Any]) -> list[dict[str, str]]:
    curves = [c for c in summary.get("curves") or [] if isinstance(c, dict)]
    ticks = sorted({(p["n_real_train"], _fraction(p.get("fraction"))) for c in curves for p in c.get("points") or []
                    if isinstance(p.get("n_real_train"), (int, float)) and p["n_real_train"] > 0})
    tick_labels = [(n, f"{n:g}\n({_percent(f)})" if f == f else f"{n:g}") for n, f in ticks]
    figures = []
    for backbone in sorted({str(c.get("backbone", "?")) for c in curves}):
        panels = []
        for task in _TASKS:
            chosen = sorted((c for c in curves if str(c.get("backbone", "?")) == backbone and c.get("task") == task),
                            key=lambda c: method_rank(str(c.get("method", "?"))))
            lines = [line for line in (_line(c) for c in chosen) if line is not None]
            if lines:
                panels.append({"title": f"{task} task", "ticks": tick_labels, "lines": lines})
        if panels:
            figures.append({"uri": efficiency_figure(panels, f"data efficiency: {backbone}, test macro-F1 "
                                                            "(error bars: 95 % bootstrap interval)"),
                            "alt": f"data efficiency {backbone}", "title": backbone})
    return figures


def _comparison_table(summary: dict[str, Any]) -> dict[str, Any] | None:
    comparison = summary.get("comparison") or {}
    counts = summary.get("n_real_train") or {}
    count_of = {_fraction(k): v for k, v in counts.items()}
    rows, classes = [], []
    entries = [(_fraction(key), e) for key, group in comparison.items() for e in group or [] if isinstance(e, dict)]
    entries.sort(key=lambda fe: (str(fe[1].get("backbone")), _TASKS.index(fe[1]["task"]) if fe[1].get("task") in
                                 _TASKS else 2, fe[1].get("trained_task") != fe[1].get("task"), fe[0]))
    for fraction, entry in entries:
        best = (entry.get("best_baseline") or {}).get("method")
        difference = (entry.get("flare_vs") or {}).get(best) if best else None
        if difference is None:
            continue
        interval = (difference.get("ci95") or {}).get("macro_f1")
        shown = _percent(fraction) if fraction == fraction else "?"
        rows.append([entry.get("backbone", "?"), task_label(entry), shown, count_of.get(fraction, "?"),
                     method_label(best), format_difference(difference.get("macro_f1") or {}),
                     format_interval(interval, signed=True) or "–",
                     f"{difference.get('wins', 0)} of {len(difference.get('seeds') or [])}", entry.get("headline", "")])
        classes.append(verdict(entry))
    if not rows:
        return None
    header = ["backbone", "task", "fraction", "real train images", "best baseline (val)",
              "FLARE − best, points", "95 % interval, points", "seeds FLARE is ahead", "headline"]
    return table(header, rows, "efficiency-comparison", row_classes=classes)


def efficiency_section(run: Path) -> dict[str, Any] | None:
    """The curves and FLARE − best baseline per fraction, or None when there is no ``efficiency.json``."""
    file = run / EFFICIENCY_FILE
    if not file.is_file():
        return None
    try:
        summary = json.loads(file.read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
        figures, comparison = _figures(summary), _comparison_table(summary)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        return {"file": EFFICIENCY_FILE, "error": f"{type(error).__name__}: {error}", "figures": [],
                "comparison": None, "fractions": "", "subset_seed": ""}
    fractions = sorted(_fraction(f) for f in summary.get("fractions") or [])
    return {"file": EFFICIENCY_FILE, "error": None, "figures": figures, "comparison": comparison,
            "fractions": ", ".join(_percent(f) for f in fractions if f == f),
            "subset_seed": str(summary.get("subset_seed", "?"))}
