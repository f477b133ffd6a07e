"""Bring synthetic images to the dataset's image size: the stage-1 upscaler when one is given, else bicubic.

A generator works at its own resolution (the embedded UNet at 32 px); the images it adds to a training set
should look like the set's base images (the upscaled HR ones when stage 1 ran). The upscaler is a component the
caller hands in (``pipeline.py`` and the CLI pass ``functools.partial(create_upscaler, name)``), so this stage
never imports stage 1. With one, images go through ``upscaler(scale=2|4)`` then an exact bicubic resize to the
target side; without one, a bicubic resize. What was done is recorded in each row's params.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PIL import Image

__all__ = ["SizeMatcher"]


class SizeMatcher:
    """Resizes ``(R, R, 3)`` uint8 images to ``target_px`` and describes how (for the manifest)."""

    def __init__(self, target_px: int, upscaler: Callable[..., Any] | None = None, upscaler_name: str = ""):
        """``upscaler(scale=s)`` builds a stage-1 backend (``upscale_many``) for an integer scale; ``upscaler_name``
        is what the rows record."""
        self.target_px = int(target_px)
        self.upscaler = upscaler
        self.upscaler_name = upscaler_name
        self._upscalers: dict[int, Any] = {}

    def _upscaler(self, scale: int):
        if scale not in self._upscalers:
            self._upscalers[scale] = self.upscaler(scale=scale)
        return self._upscalers[scale]

    def __call__(self, images: list[np.ndarray]) -> tuple[list[np.ndarray], dict[str, Any]]:
        if not images:
            return [], {}
        side = images[0].shape[0]
        if side == self.target_px:
            return images, {"output_size_px": side}
        record: dict[str, Any] = {"generated_size_px": side, "output_size_px": self.target_px}
        if side < self.target_px and self.upscaler is not None:
            scale = 2 if self.target_px <= 2 * side else 4
            images = list(self._upscaler(scale).upscale_many(images))
            record["upscaled_with"] = f"{self.upscaler_name}x{scale}"
        out = []
        for image in images:
            if image.shape[0] != self.target_px:
                pil = Image.fromarray(image).resize((self.target_px, self.target_px), Image.Resampling.BICUBIC)
                image = np.asarray(pil, dtype=np.uint8)
                record["resized_with"] = "bicubic"
            out.append(image)
        return out, record
