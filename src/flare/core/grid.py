"""Labelled image grids: one row per label (a label column, then the row's images as square cells).

The one grid maker shared by the stages that write grids to look at (``flare.generate`` writes its per-class
PNG) and the HTML report (sample, synthetic and SR before/after grids), so both draw rows the same way.
Cells are enlarged with nearest-neighbour resampling, which keeps the pixels of small survey and generated
images visible instead of blurring them; images larger than a cell are shrunk with bicubic resampling,
since nearest-neighbour would alias them. Labels too wide for the label column are shortened with "...".
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["labelled_grid", "Rows"]

Rows = Sequence[tuple[str, Sequence[np.ndarray]]]
"""``[(label, [image, ...]), ...]`` in display order; labels may repeat (one row per SR example, say)."""


def labelled_grid(rows: Rows, *, cell_px: int = 64, label_px: int = 170, gap_px: int = 2,
                  background: tuple[int, int, int] = (24, 24, 24),
                  foreground: tuple[int, int, int] = (230, 230, 230)) -> Image.Image:
    """Draw ``rows`` as an RGB image of ``label_px + columns·(cell_px + gap_px)`` × ``rows·(cell_px + gap_px)``.

    ``columns`` is the longest row; shorter rows leave their remaining cells as background. At least one row
    and one column are laid out, so an empty grid is still an image that can be saved.
    """
    step = cell_px + gap_px
    columns = max(1, max((len(images) for _, images in rows), default=1))
    grid = Image.new("RGB", (label_px + columns * step, max(1, len(rows)) * step), background)
    draw = ImageDraw.Draw(grid)
    for r, (label, images) in enumerate(rows):
        top = r * step
        text = _fit(draw, str(label), label_px - 8)
        left_edge, upper, _, lower = draw.textbbox((0, 0), text)
        draw.text((4 - left_edge, top + (cell_px - (lower - upper)) // 2 - upper), text, fill=foreground)
        for c, image in enumerate(images):
            grid.paste(_cell(image, cell_px), (label_px + c * step, top))
    return grid


def _cell(image: np.ndarray, cell_px: int) -> Image.Image:
    tile = Image.fromarray(image)
    enlarging = max(tile.size) <= cell_px
    return tile.resize((cell_px, cell_px), Image.Resampling.NEAREST if enlarging else Image.Resampling.BICUBIC)


def _fit(draw: ImageDraw.ImageDraw, text: str, width_px: int) -> str:
    if draw.textlength(text) <= width_px:
        return text
    while text and draw.textlength(text + "...") > width_px:
        text = text[:-1]
    return text + "..."
