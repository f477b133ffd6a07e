"""``flare.core.grid``: the one labelled-grid maker behind the generate stage's PNG and the report's grids."""

from __future__ import annotations

import numpy as np
from PIL import Image

from flare.core.grid import labelled_grid
from flare.core.manifest import Manifest
from flare.generate.grid import save_class_grid

BACKGROUND = (24, 24, 24)


def _solid(colour: tuple[int, int, int], side: int = 4) -> np.ndarray:
    return np.full((side, side, 3), colour, dtype=np.uint8)


def test_grid_size_and_rows_in_order():
    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    rows = [("first", [_solid(red), _solid(red), _solid(red)]), ("second", [_solid(green)]), ("first", [_solid(blue)])]
    grid = np.asarray(labelled_grid(rows, cell_px=10, label_px=40, gap_px=2, background=BACKGROUND))
    assert grid.shape == (3 * 12, 40 + 3 * 12, 3)  # longest row sets the columns; repeated labels keep their rows
    centre = lambda r, c: tuple(grid[r * 12 + 5, 40 + c * 12 + 5])  # noqa: E731
    assert [centre(0, c) for c in range(3)] == [red] * 3
    assert centre(1, 0) == green and centre(2, 0) == blue
    assert centre(1, 1) == BACKGROUND and centre(2, 2) == BACKGROUND  # short rows leave empty cells
    assert (grid[0:10, 0:40] != BACKGROUND).any()  # the label was drawn in its column


def test_grid_enlarges_with_nearest_neighbour_and_shrinks_to_the_cell():
    checker = np.zeros((2, 2, 3), dtype=np.uint8)
    checker[0, 0] = checker[1, 1] = 255
    grid = np.asarray(labelled_grid([("", [checker, np.zeros((40, 40, 3), dtype=np.uint8)])], cell_px=8, label_px=10))
    cell = grid[:8, 10:18]
    assert set(np.unique(cell)) == {0, 255}  # no interpolated greys
    assert (cell[:4, :4] == 255).all() and (cell[:4, 4:] == 0).all()
    assert grid.shape == (10, 10 + 2 * 10, 3) and (grid[:8, 20:28] == 0).all()
    assert (grid[:, :10] == BACKGROUND).all()  # an empty label draws nothing


def test_empty_grid_is_still_an_image():
    assert labelled_grid([], cell_px=8, label_px=10).size == (20, 10)


def test_save_class_grid_writes_one_row_per_class(sim_dataset, tmp_path):
    manifest = Manifest.read(sim_dataset)
    stage = manifest.frame["stage"].iloc[0]
    path = save_class_grid(manifest, tmp_path / "grid.png", operation=None, stage=stage, per_class=3, cell_px=16)
    classes = manifest.frame["label"].nunique()
    with Image.open(path) as image:
        assert image.size == (170 + 3 * 18, classes * 18)
