"""Figures for the report as base64 PNG data URIs, so the report stays one self-contained file: image grids
(:mod:`flare.core.grid`), bars, confusion matrices and feature maps (matplotlib, Agg backend, so no display is
needed)."""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np
from PIL import Image

from flare.core.grid import Rows, labelled_grid

__all__ = ["png_data_uri", "grid_figure", "bar_chart", "confusion_figure", "feature_figure"]


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
