"""Tables and number formats shared by the report's sections: a table is plain data the template lays out.

Scores in ``results.json`` are fractions in [0, 1]; the report shows them as percentages (a score) or
percentage points (a difference between two scores), one decimal.
"""

from __future__ import annotations

from typing import Any, Iterable

from flare.core.methods import BASELINES, METHOD_ORDER, UPPER_BOUNDS, is_upper_bound

__all__ = ["METHOD_ORDER", "UPPER_BOUNDS", "BASELINES", "table", "cell", "method_label", "is_upper_bound",
           "method_rank", "format_summary", "format_interval", "format_points", "format_difference"]

def method_label(method: str) -> str:
    """The name to print: an upper bound says so wherever it appears."""
    return f"{method} (upper bound)" if is_upper_bound(method) else method


def method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER) - 1


def cell(text: Any, note: str = "", bar: float | None = None, cls: str = "") -> dict[str, Any]:
    """One table cell: ``note`` is a second, smaller line (an interval); ``bar`` a 0–100 gauge under the text."""
    return {"text": str(text), "note": note, "bar": None if bar is None else round(min(100.0, max(0.0, bar)), 1),
            "cls": cls}


def table(header: Iterable[Any], rows: Iterable[Iterable[Any]], table_id: str = "",
          best: set[tuple[int, int]] | None = None, row_classes: Iterable[str] | None = None) -> dict[str, Any]:
    """A table as data: ``best`` holds the (row, column) cells to highlight, ``row_classes`` a CSS class per row.

    A value that is already a :func:`cell` keeps its note and gauge; anything else becomes its ``str``.
    """
    best = best or set()
    rows = [list(row) for row in rows]
    classes = list(row_classes) if row_classes is not None else [""] * len(rows)
    out_rows = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            value = dict(value) if isinstance(value, dict) else cell(value)
            if (r, c) in best:
                value["cls"] = "best"
            cells.append(value)
        out_rows.append({"cls": classes[r], "cells": cells})
    return {"id": table_id, "header": [str(h) for h in header], "rows": out_rows}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == value


def format_summary(summary: dict[str, float]) -> str:
    """``{mean, std, n}`` of a score as ``mean ± std`` in percent (one seed: the mean alone; none: –)."""
    if not summary or summary.get("n", 0) == 0 or not _finite(summary.get("mean")):
        return "–"
    if summary["n"] == 1:
        return f"{100 * summary['mean']:.1f}"  # one seed: no spread to show
    return f"{100 * summary['mean']:.1f} ± {100 * summary['std']:.1f}"


def format_interval(interval: dict[str, float] | None, signed: bool = False) -> str:
    """A 95 % interval ``{low, high}`` as ``[low, high]`` in percent, or ``low to high`` points when signed."""
    if not interval or not _finite(interval.get("low")) or not _finite(interval.get("high")):
        return ""
    if signed:
        return f"{format_points(interval['low'])} to {format_points(interval['high'])}"
    return f"[{100 * interval['low']:.1f}, {100 * interval['high']:.1f}]"


def format_points(value: float | None) -> str:
    """A difference of two scores in percentage points, signed."""
    return f"{100 * value:+.1f}" if _finite(value) else "–"


def format_difference(summary: dict[str, float]) -> str:
    """``{mean, std, n}`` of a paired difference in signed points (± std over seeds when there are several)."""
    if not summary or summary.get("n", 0) == 0 or not _finite(summary.get("mean")):
        return "–"
    if summary["n"] == 1:
        return format_points(summary["mean"])
    return f"{format_points(summary['mean'])} ± {100 * summary['std']:.1f}"
