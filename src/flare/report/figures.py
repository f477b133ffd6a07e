"""Figures for the report as base64 PNG data URIs, so the report stays one self-contained file: image grids
(:mod:`flare.core.grid`), bars, confusion matrices, feature maps, validation curves and data-efficiency curves
(matplotlib, Agg backend, so no display is needed). An upper bound (Oracle_HR) is drawn dashed wherever it
appears, so it never reads as one of the methods."""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np
from PIL import Image

from flare.core.grid import Rows, labelled_grid

__all__ = ["png_data_uri", "grid_figure", "bar_chart", "confusion_figure", "feature_figure", "val_curves_figure",
           "efficiency_figure"]


def png_data_uri(image: Image.Image | np.ndarray) -> str:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def grid_figure(rows: Rows, cell_px: int = 72) -> str:
    """A labelled grid (:func:`flare.core.grid.labelled_grid`) on the page's white, as a data URI."""
    return png_data_uri(labelled_grid(rows, cell_px=cell_px, label_px=150, background=(255, 255, 255),
                                      foreground=(0, 0, 0)))


def _figure_uri(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(counts: dict[str, dict[str, int]], title: str) -> str:
    """Grouped bars: ``{class: {split: count}}``."""
    plt = _pyplot()
    classes = list(counts)
    splits = list(dict.fromkeys(s for v in counts.values() for s in v))
    figure, axis = plt.subplots(figsize=(max(4, len(classes) * 0.9), 3))
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        axis.bar(np.arange(len(classes)) + i * width, [counts[c].get(split, 0) for c in classes], width, label=split)
    axis.set_xticks(np.arange(len(classes)) + width * (len(splits) - 1) / 2, classes, rotation=30, ha="right")
    axis.set_title(title)
    axis.legend()
    return _figure_uri(figure)


def confusion_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> str:
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    normalised = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = 1.2 + 0.55 * len(classes)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            axis.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=7,
                      color="white" if normalised[i, j] > 0.5 else "black")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
    axis.set_yticks(range(len(classes)), classes, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=9)
    return _figure_uri(figure)


def feature_figure(embedding: dict[str, Any], title: str) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(3.6, 3.4))
    labels = embedding["labels"]
    x, y = np.asarray(embedding["x"]), np.asarray(embedding["y"])
    for i, label in enumerate(sorted(set(labels))):
        mask = np.array([l == label for l in labels])
        axis.scatter(x[mask], y[mask], s=8, label=label, color=plt.cm.tab10(i % 10))
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=6, markerscale=1.5, loc="best")
    return _figure_uri(figure)


def val_curves_figure(panels: Sequence[dict[str, Any]], title: str, columns: int = 4) -> str:
    """Small multiples of validation macro-F1 against epoch, one panel per method, one line per seed.

    Each panel: ``title``, ``upper_bound`` (drawn dashed on a tinted panel), ``max_epochs`` (the budget: the
    x axis runs to it, so a run that stopped early shows the epochs it left unused) and ``lines``, each
    ``{label, epochs, values, best_epoch}``; the best epoch (the model kept) is a star on a dotted line.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    columns = max(1, min(columns, len(panels)))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.7 * columns, 2.1 * rows + 0.5), sharey=True,
                                squeeze=False)
    for axis, panel in zip(axes.flat, panels):
        style = "--" if panel.get("upper_bound") else "-"
        if panel.get("upper_bound"):
            axis.set_facecolor("#f1eefa")
        last = 1
        for i, line in enumerate(panel["lines"]):
            colour = plt.cm.tab10(i % 10)
            epochs, values = list(line["epochs"]), list(line["values"])
            axis.plot(epochs, values, style, color=colour, linewidth=1.2, label=line["label"])
            last = max([last, *epochs])
            best = line.get("best_epoch")
            if best in epochs:
                axis.axvline(best, color=colour, linestyle=":", linewidth=0.8)
                axis.plot([best], [values[epochs.index(best)]], "*", color=colour, markersize=9)
        budget = max(last, int(panel.get("max_epochs") or 0))
        axis.set_xlim(0.5, budget + 0.5)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(panel["title"], fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        if len(panel["lines"]) > 1:
            axis.legend(fontsize=6, loc="lower right")
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    for axis in axes[:, 0]:
        axis.set_ylabel("val macro-F1", fontsize=7)
    for axis in axes[-1, :]:
        axis.set_xlabel("epoch", fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _figure_uri(figure)


def efficiency_figure(panels: Sequence[dict[str, Any]], title: str) -> str:
    """Test macro-F1 against the number of real train images (log x), one line per method, 95 % error bars.

    Each panel: ``title``, ``ticks`` (``[(x, label)]``) and ``lines``, each ``{label, x, y, low, high,
    upper_bound, highlight}``; ``low``/``high`` bound the error bar (the value itself when unknown). An upper
    bound is grey and dashed; the highlighted line (FLARE) is drawn thicker.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.6, 3.4), squeeze=False)
    for axis, panel in zip(axes.flat, panels):
        colours = iter(plt.cm.tab10(i % 10) for i in range(100))
        count = len(panel["lines"])
        for i, line in enumerate(panel["lines"]):
            y = np.asarray(line["y"], dtype=float)
            below = np.clip(y - np.asarray(line["low"], dtype=float), 0, None)
            above = np.clip(np.asarray(line["high"], dtype=float) - y, 0, None)
            upper = bool(line.get("upper_bound"))
            # each method a little apart on the log axis, so equal scores keep their error bars visible
            x = np.asarray(line["x"], dtype=float) * 1.025 ** (i - (count - 1) / 2)
            axis.errorbar(x, y, yerr=[below, above], capsize=3, marker="o", markersize=4,
                          linestyle="--" if upper else "-", color="0.45" if upper else next(colours),
                          linewidth=2.4 if line.get("highlight") else 1.3, label=line["label"])
        axis.set_xscale("log")
        ticks = panel.get("ticks") or []
        if ticks:
            axis.set_xticks([x for x, _ in ticks], [label for _, label in ticks], fontsize=7)
            axis.minorticks_off()
        axis.set_xlabel("real train images (fraction of the train set)", fontsize=8)
        axis.set_ylabel("test macro-F1", fontsize=8)
        axis.set_title(panel["title"], fontsize=9)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    axes.flat[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _figure_uri(figure)
