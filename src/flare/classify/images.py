"""Decode manifest rows once into a square uint8 tensor at the benchmark resolution, kept in memory and in npz.

Every image is resized with PIL bicubic to ``size_px`` × ``size_px``; for LR inputs that *is* the bicubic
upscale of the Raw_LR baseline. Rows are keyed by their resolved path and sha256, so the same file decoded for
five methods and three seeds is decoded once per process; an npz per row set makes a re-run start instantly.
A row whose file does not exist (a lazy augmentation) is rendered by the ``render`` component the caller hands
in (``pipeline.py`` and the CLI pass ``flare.augment.loader.load_row_image``), so classify never imports augment.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from flare.core.errors import ManifestError
from flare.core.files import atomic_output
from flare.core.io import load_rgb
from flare.core.manifest import Manifest

__all__ = ["resize_square", "ImageTensorCache", "load_row_image", "RowRenderer"]

# ``render(manifest, row) -> (H, W, 3) uint8``: draws a row that has no file (a lazy augmentation recipe)
RowRenderer = Callable[[Manifest, dict[str, Any]], np.ndarray]


def resize_square(image: np.ndarray, size_px: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 → ``(3, size_px, size_px)`` uint8 by PIL bicubic (aspect not kept: cutouts are square)."""
    if image.shape[0] != size_px or image.shape[1] != size_px:
        image = np.asarray(Image.fromarray(image).resize((size_px, size_px), Image.Resampling.BICUBIC))
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def load_row_image(manifest: Manifest, row: dict[str, Any], render: RowRenderer | None = None) -> np.ndarray:
    """The RGB image of a manifest row; a row without a file is drawn by ``render`` (lazy augmentations)."""
    path = manifest.resolve(row["path"])
    if path.is_file():
        return load_rgb(path)
    if render is None:
        raise ManifestError(f"manifest: image {str(path)!r} of row {row['id']!r} does not exist")
    return np.asarray(render(manifest, row), dtype=np.uint8)


class ImageTensorCache:
    """``rows → (N, 3, S, S)`` uint8, memoised per row in memory and per row set in ``cache_dir``."""

    def __init__(self, size_px: int, cache_dir: str | Path | None = None, workers: int = 2,
                 render: RowRenderer | None = None):
        self.size_px = size_px
        self.render = render
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.workers = workers
        self._memory: dict[str, np.ndarray] = {}

    def key(self, manifest: Manifest, row: dict[str, Any]) -> str:
        """A row's identity: resolved path, recorded sha256 and id (the feature cache keys by it too)."""
        return f"{manifest.resolve(row['path']).resolve()}|{row.get('sha256') or ''}|{row['id']}"

    def load(self, manifest: Manifest, rows: list[dict[str, Any]]) -> np.ndarray:
        keys = [self.key(manifest, r) for r in rows]
        if not keys:
            return np.zeros((0, 3, self.size_px, self.size_px), np.uint8)
        file = None
        if self.cache_dir is not None:
            digest = hashlib.sha256("\n".join([str(self.size_px), *keys]).encode()).hexdigest()[:20]
            file = self.cache_dir / f"images-{self.size_px}px-{digest}.npz"
            if file.is_file() and not all(k in self._memory for k in keys):
                with np.load(file) as stored:
                    for key, image in zip(keys, stored["images"]):
                        self._memory[key] = image
        missing = [(k, r) for k, r in zip(keys, rows) if k not in self._memory]
        if missing:
            def decode(item: tuple[str, dict[str, Any]]) -> np.ndarray:
                return resize_square(load_row_image(manifest, item[1], self.render), self.size_px)

            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                for (key, _), image in zip(missing, pool.map(decode, missing)):
                    self._memory[key] = image
        stacked = np.stack([self._memory[k] for k in keys])
        if file is not None and (missing or not file.is_file()):
            with atomic_output(file) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, images=stacked)
        return stacked
