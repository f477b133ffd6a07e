"""Interpolation baselines: bicubic and Lanczos (PIL, per channel in float, so nothing is rounded twice).

They invent nothing and keep total flux to within the ringing at edges; ``bicubic`` is what the ``auto``
backend falls back to when no trained model exists for a dataset.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from flare.upscale.base import UpscaleBackend, UpscalerInfo, to_uint8

__all__ = ["InterpolationUpscaler"]

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


class InterpolationUpscaler(UpscaleBackend):
    """PIL ``resize`` with a named filter, applied to each channel as 32-bit float."""

    def __init__(self, method: str, scale: int = 4, measured_flux_ratio: float | None = None):
        self.method = method
        self.info = UpscalerInfo(name=method, scale=int(scale), model_id=f"PIL.{method}", license="HPND (Pillow)",
                                 measured_flux_ratio=measured_flux_ratio)

    @property
    def config(self):
        return {**super().config, "method": self.method}

    def upscale_batch(self, images: np.ndarray) -> np.ndarray:
        batch, height, width, channels = images.shape
        size = (width * self.info.scale, height * self.info.scale)
        out = np.empty((batch, size[1], size[0], channels), dtype=np.uint8)
        for n in range(batch):
            for c in range(channels):
                plane = Image.fromarray(images[n, :, :, c].astype(np.float32) / 255.0, mode="F")
                out[n, :, :, c] = to_uint8(np.asarray(plane.resize(size, _FILTERS[self.method])))
        return out
