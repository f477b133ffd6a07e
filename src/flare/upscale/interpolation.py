"""Interpolation baselines: bicubic and Lanczos (PIL, per channel in float, so nothing is rounded twice).

They invent nothing and keep total flux to within the ringing at edges; ``bicubic`` is what the ``auto``
backend falls back to when no trained model exists for a dataset. Registers ``bicubic`` (the default) and
``lanczos``; their one option is ``scale`` (any integer; None: ``DEFAULT_SCALE``, 4). They register
``any_scale`` meta, so the stage hands them the dataset's recorded binning factor when ``upscale.scale`` is unset.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from flare.upscale.base import UpscaleBackend, UpscalerInfo, to_uint8
from flare.upscale.registry import register_upscaler

__all__ = ["InterpolationUpscaler", "MEASURED_FLUX_RATIO", "DEFAULT_SCALE"]

# The scale of an interpolation told none (the stage passes the dataset's binning factor when it records one).
DEFAULT_SCALE = 4

# Total-flux ratio (output / HR truth) measured on the GZ1 protocol test subset (docs/super_resolution.md).
MEASURED_FLUX_RATIO: dict[str, float] = {"bicubic": 1.004, "lanczos": 1.005}

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


class InterpolationUpscaler(UpscaleBackend):
    """PIL ``resize`` with a named filter, applied to each channel as 32-bit float."""

    def __init__(self, method: str, scale: int | None = None, measured_flux_ratio: float | None = None):
        self.method = method
        scale = DEFAULT_SCALE if scale is None else scale
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


@register_upscaler("bicubic", description="Bicubic interpolation (faithful baseline; the auto fallback)",
                   default=True, any_scale=True, measured_flux_ratio=MEASURED_FLUX_RATIO["bicubic"])
def bicubic(scale: int | None = None) -> InterpolationUpscaler:
    return InterpolationUpscaler("bicubic", scale, MEASURED_FLUX_RATIO["bicubic"])


@register_upscaler("lanczos", description="Lanczos interpolation (faithful baseline)",
                   any_scale=True, measured_flux_ratio=MEASURED_FLUX_RATIO["lanczos"])
def lanczos(scale: int | None = None) -> InterpolationUpscaler:
    return InterpolationUpscaler("lanczos", scale, MEASURED_FLUX_RATIO["lanczos"])
