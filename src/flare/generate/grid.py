"""Per-class image grids (one row per class, labelled) to look at what a generator makes.

The drawing is :func:`flare.core.grid.labelled_grid` (shared with the report); this module only picks the
rows: the first images per class of one stage and operation, in id order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flare.core.grid import labelled_grid
from flare.core.io import load_rgb
from flare.core.manifest import Manifest
from flare.core.taxonomy import Taxonomy

__all__ = ["save_class_grid"]


def save_class_grid(manifest: Manifest, path: str | Path, *, operation: str | None = "t2i", stage: str = "generate",
                    taxonomy: Taxonomy | None = None, per_class: int = 8, cell_px: int = 64) -> Path:
    """Write a grid of the first ``per_class`` images of ``stage``/``operation`` per class to ``path``."""
    rows = manifest.filter(stage=stage) if stage else manifest
    if operation:
        rows = rows.filter(operation=operation)
    grid: list[tuple[str, list[np.ndarray]]] = []
    for label, group in rows.frame.sort_values("id").groupby("label", sort=True):
        name = taxonomy.display_name(label) if taxonomy else label
        grid.append((name, [load_rgb(rows.resolve(p)) for p in group["path"].head(per_class)]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled_grid(grid, cell_px=cell_px).save(path)
    return path
