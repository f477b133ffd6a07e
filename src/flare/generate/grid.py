"""Per-class image grids (one row per class, labelled) to look at what a generator makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from flare.core.io import load_rgb
from flare.core.manifest import Manifest
from flare.core.taxonomy import Taxonomy

__all__ = ["save_class_grid", "grid_image"]


def grid_image(rows: dict[str, list[np.ndarray]], cell_px: int = 64, label_px: int = 170) -> Image.Image:
    """Label column + up to N cells per row (nearest-neighbour enlargement keeps the generated pixels visible)."""
    columns = max((len(v) for v in rows.values()), default=0)
    canvas = Image.new("RGB", (label_px + columns * (cell_px + 2), len(rows) * (cell_px + 2)), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    for r, (name, images) in enumerate(rows.items()):
        y = r * (cell_px + 2)
        draw.text((4, y + cell_px // 2 - 6), name[:28], fill=(230, 230, 230))
        for c, image in enumerate(images):
            cell = Image.fromarray(image).resize((cell_px, cell_px), Image.Resampling.NEAREST)
            canvas.paste(cell, (label_px + c * (cell_px + 2), y))
    return canvas


def save_class_grid(manifest: Manifest, path: str | Path, *, operation: str | None = "t2i", stage: str = "generate",
                    taxonomy: Taxonomy | None = None, per_class: int = 8, cell_px: int = 64) -> Path:
    """Write a grid of the first ``per_class`` images of ``stage``/``operation`` per class to ``path``."""
    rows = manifest.filter(stage=stage) if stage else manifest
    if operation:
        rows = rows.filter(operation=operation)
    grid: dict[str, list[np.ndarray]] = {}
    for label, group in rows.frame.sort_values("id").groupby("label", sort=True):
        name = taxonomy.display_name(label) if taxonomy else label
        grid[name] = [load_rgb(rows.resolve(p)) for p in group["path"].head(per_class)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(grid, cell_px).save(path)
    return path
