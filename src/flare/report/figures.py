"""Figures for the report as base64 PNG data URIs: image grids (PIL), bars, confusion matrices, feature maps
(matplotlib, Agg backend, so no display is needed)."""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["png_data_uri", "image_grid", "bar_chart", "confusion_figure", "feature_figure"]


def png_data_uri(image: Image.Image | np.ndarray) -> str:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_grid(rows: Sequence[tuple[str, Sequence[np.ndarray]]], tile_px: int = 72, label_px: int = 150) -> Image.Image:
    """One labelled row per class: ``[(label, [images...]), ...]`` → a PIL image."""
    columns = max((len(images) for _, images in rows), default=1) or 1
    grid = Image.new("RGB", (label_px + columns * (tile_px + 2), max(1, len(rows)) * (tile_px + 2)), "white")
    draw = ImageDraw.Draw(grid)
    for r, (label, images) in enumerate(rows):
        top = r * (tile_px + 2)
        draw.text((4, top + tile_px // 2 - 6), label[:24], fill="black")
        for c, image in enumerate(images):
            tile = Image.fromarray(image).resize((tile_px, tile_px), Image.Resampling.NEAREST
                                                 if image.shape[0] < tile_px else Image.Resampling.BICUBIC)
            grid.paste(tile, (label_px + c * (tile_px + 2), top))
    return grid


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
