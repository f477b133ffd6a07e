"""The astronomical LR observation model shared by the simulator, the GZ1 protocol and SR training.

HR (8-bit display units) → extra PSF blur (Gaussian, FWHM in HR pixels, bringing the truth's PSF up to the
survey's) → ×factor box binning (mean of each block, so surface brightness and total flux per area are kept)
→ noise: sky + Poisson (variance (signal + sky) / gain) + Gaussian read noise → round and clip to uint8.
The noise is drawn from a generator seeded per image, so the same image and seed always give the same LR.

This module is the one home of the Gaussian PSF: :data:`FWHM_PER_SIGMA` and :func:`gaussian_kernel` (the
augment stage's PSF blur). ``degrade`` blurs with scipy's ``gaussian_filter`` (radius 4σ, its default);
``gaussian_kernel`` keeps a 3σ radius because recorded augmentation recipes replay byte for byte with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["DegradeConfig", "degrade", "bin_image", "gaussian_kernel", "FWHM_PER_SIGMA", "FWHM_TO_SIGMA"]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
FWHM_TO_SIGMA = 1.0 / FWHM_PER_SIGMA


def gaussian_kernel(fwhm_px: float, truncate_sigma: float = 3.0) -> list[float]:
    """Normalised 1-D Gaussian of the given FWHM (pixels), radius ceil(truncate_sigma · σ), float64 → float32 weights."""
    sigma = fwhm_px / FWHM_PER_SIGMA
    radius = max(1, math.ceil(truncate_sigma * sigma))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return [float(np.float32(w)) for w in weights / weights.sum()]


@dataclass(frozen=True)
class DegradeConfig:
    factor: int = 4
    psf_fwhm_px: float = 4.0  # extra blur, in HR pixels (4 HR px = 1 LR px at factor 4)
    sky_level: float = 2.0  # display units added before Poisson noise, subtracted after (sky-subtracted frame)
    gain: float = 4.0  # display units → "electrons" for Poisson variance; larger gain = less shot noise
    read_noise: float = 2.0  # Gaussian sigma in display units

    def to_dict(self) -> dict:
        return asdict(self)


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor × factor`` blocks (crops any remainder)."""
    height, width = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    image = image[:height, :width]
    shape = (height // factor, factor, width // factor, factor) + image.shape[2:]
    return image.reshape(shape).mean(axis=(1, 3))


def degrade(hr: np.ndarray, config: DegradeConfig, rng: np.random.Generator, *, as_float: bool = False) -> np.ndarray:
    """Observe an HR image (H, W[, C], uint8 or float display units) at ×factor coarser pixels."""
    image = np.asarray(hr, dtype=np.float64)
    if config.psf_fwhm_px > 0:
        sigma = config.psf_fwhm_px * FWHM_TO_SIGMA
        sigmas = (sigma, sigma) + (0,) * (image.ndim - 2)
        image = gaussian_filter(image, sigma=sigmas, mode="reflect")
    lr = bin_image(image, config.factor)
    if config.gain > 0:
        expected = np.clip(lr + config.sky_level, 0, None) * config.gain
        lr = rng.poisson(expected) / config.gain - config.sky_level
    if config.read_noise > 0:
        lr = lr + rng.normal(0.0, config.read_noise, size=lr.shape)
    if as_float:
        return lr
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)
