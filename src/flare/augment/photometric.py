"""Photometric transforms: colour jitter (torchvision semantics) and the astronomy-safe ones: noise at an SNR, PSF
blur and a colour-preserving brightness/contrast change.

None of these mirrors the image, so labels never change. Every step is element-wise (the colour-space
conversion is the closed form of torchvision's, with exact IEEE operations); the per-image reductions (mean grey level,
percentiles) run in NumPy float64 so that batching cannot change a single pixel.

A galaxy's colour is physics (red ellipticals, blue disks): the astronomy-safe steps treat the three channels
alike. Blur and noise act on each channel the same way; :class:`BrightnessContrast` scales the three channels
of a pixel by one factor, so no pixel's hue, saturation or chromaticity changes. Colour jitter's hue and
saturation changes (and its contrast, which adds a grey offset) do change them.

The photometric presets are registered at the end of this module (``color_jitter``, ``flip_color_jitter``,
which adds a horizontal flip, ``noise``, ``psf_blur``, ``brightness_contrast``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from flare.augment.base import AugmentTransform, Preset
from flare.augment.geometric import HorizontalFlip
from flare.augment.registry import register_preset
from flare.core.degrade import gaussian_kernel
from flare.core.errors import ConfigError

__all__ = ["ColorJitter", "GaussianNoise", "PSFBlur", "BrightnessContrast", "shift_hue"]

# ITU-R 601 weights, as torchvision's rgb_to_grayscale.
_GREY_WEIGHTS = (0.2989, 0.587, 0.114)


def _grey(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return (r * _GREY_WEIGHTS[0]).add_(g * _GREY_WEIGHTS[1]).add_(b * _GREY_WEIGHTS[2])


def _grey_mean(image: torch.Tensor) -> np.float32:
    """Mean grey level of one image: a float64 pairwise sum, so nothing about the batch can change it."""
    grey = _grey(image).numpy().astype(np.float64)
    return np.float32(grey.sum() / grey.size)


_SECTOR_OFFSETS = torch.tensor([5.0, 3.0, 1.0]).reshape(1, 3, 1, 1)  # HSV → RGB: n for R, G, B
_JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")  # ColorJitter's order indexes these


def shift_hue(images: torch.Tensor, shift_turns: torch.Tensor | float) -> torch.Tensor:
    """Rotate the hue of RGB images by ``shift_turns`` (a number or ``(B, 1, 1, 1)``, in [-0.5, 0.5]); S and V
    are kept.

    The HSV round trip in closed form: with V = max, C = max − min and H the hue in sextants,
    channel n ∈ {R: 5, G: 3, B: 1} = V − C·clamp(min(k, 4 − k), 0, 1), k = (n + H + 6·shift) mod 6.
    The maximum channel is told by ``sign(V − channel)`` (exactly 0 or 1) and chosen by ``lerp`` with those
    weights, an exact select: on a CPU ``eq`` and ``where`` cost 5–20× as much as plain arithmetic.
    """
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    not_r = torch.sign(value - r)
    not_g = torch.sign(value - g)
    # Hue in sextants × C: g − b where R is the max (first on ties), b − r + 2C where G is, else r − g + 4C.
    two_chroma = chroma + chroma
    g_or_b = torch.lerp((b - r).add_(two_chroma), (r - g).add_(two_chroma + two_chroma), not_g)
    hue = torch.lerp(g - b, g_or_b, not_r).div_(chroma.clamp(min=1e-12)).add_(shift_turns * 6.0)
    k = hue + _SECTOR_OFFSETS
    k.sub_(torch.floor(k / 6.0).mul_(6.0))
    weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return value - weight.mul_(chroma)


def _factor_range(name: str, value: float, centre: float, bound: tuple[float, float]) -> list[float] | None:
    if value < 0:
        raise ConfigError(f"augment.color_jitter.{name}: {value} must be >= 0")
    if value == 0:
        return None
    low, high = max(bound[0], centre - value), min(bound[1], centre + value)
    return [low, high]


class ColorJitter(AugmentTransform):
    """Random brightness, contrast, saturation and hue, applied in a random order (``torchvision.ColorJitter``).

    Brightness/contrast/saturation factors are drawn from ``[max(0, 1 - x), 1 + x]``, the hue shift from
    ``[-hue, hue]`` (at most 0.5, a full turn of the colour wheel). Params: ``order`` (a permutation of
    0 = brightness, 1 = contrast, 2 = saturation, 3 = hue) and the four factors (``None`` = not jittered).
    """

    name = "color_jitter"

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0):
        if not 0 <= hue <= 0.5:
            raise ConfigError(f"augment.color_jitter.hue: {hue} is not within 0..0.5")
        self.brightness, self.contrast, self.saturation, self.hue = map(float, (brightness, contrast, saturation, hue))

    def sample(self, rng, height_px, width_px, variant):
        order = [int(i) for i in rng.permutation(4)]
        ranges = [_factor_range("brightness", self.brightness, 1.0, (0.0, math.inf)),
                  _factor_range("contrast", self.contrast, 1.0, (0.0, math.inf)),
                  _factor_range("saturation", self.saturation, 1.0, (0.0, math.inf)),
                  _factor_range("hue", self.hue, 0.0, (-0.5, 0.5))]
        factors = [None if r is None else float(rng.uniform(r[0], r[1])) for r in ranges]
        return {"order": order, "brightness": factors[0], "contrast": factors[1], "saturation": factors[2],
                "hue": factors[3]}

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        out = images.clone()
        for index, p in enumerate(params):
            # Image by image: each has its own order, and the chain on one image stays in the CPU's L2 cache.
            ColorJitter._jitter_(out[index:index + 1], p)
        return out

    @staticmethod
    def _jitter_(image: torch.Tensor, params: dict[str, Any]) -> None:
        """Apply the four adjustments to one ``(1, 3, H, W)`` image in place, in ``params["order"]``.

        Factors are float32, as in a float32 tensor op: ``x·f + y·(1 − f)`` with f, 1 − f and y float32.
        """
        for op in params["order"]:
            key = _JITTER_KEYS[op]
            if params[key] is None:
                continue
            factor = np.float32(params[key])
            if key == "brightness":
                image.mul_(float(factor)).clamp_(0.0, 1.0)
            elif key == "contrast":
                offset = _grey_mean(image) * (np.float32(1.0) - factor)
                image.mul_(float(factor)).add_(float(offset)).clamp_(0.0, 1.0)
            elif key == "saturation":
                grey = _grey(image).mul_(float(np.float32(1.0) - factor))
                image.mul_(float(factor)).add_(grey).clamp_(0.0, 1.0)
            else:
                image.copy_(shift_hue(image, float(factor)))


def _range(name: str, value: float | Sequence[float]) -> list[float]:
    low, high = (value, value) if isinstance(value, (int, float)) else (value[0], value[1])
    if not 0 < low <= high:
        raise ConfigError(f"augment.{name}: {value} must be positive with low <= high")
    return [float(low), float(high)]


class GaussianNoise(AugmentTransform):
    """Add Gaussian noise so that the source's peak above the sky has the given SNR (display units).

    signal = 99.5th percentile − median of the image (the median is the sky in a centred cutout);
    sigma = max(signal, 1/255) / SNR. The SNR is drawn uniformly from ``snr`` (a number fixes it); the noise
    itself comes from ``numpy.random.default_rng(noise_seed)``, so the recorded seed replays it exactly.
    """

    name = "noise"

    def __init__(self, snr: float | Sequence[float] = (10.0, 30.0)):
        self.snr = _range("noise.snr", snr)

    def sample(self, rng, height_px, width_px, variant):
        return {"snr": float(rng.uniform(*self.snr)), "noise_seed": int(rng.integers(0, 2**31 - 1))}

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        out = images.clone()
        for i, p in enumerate(params):
            pixels = images[i].numpy()
            signal = float(np.percentile(pixels, 99.5) - np.median(pixels))
            sigma = np.float32(max(signal, 1.0 / 255.0) / p["snr"])
            noise = np.random.default_rng(p["noise_seed"]).standard_normal(pixels.shape, dtype=np.float32) * sigma
            out[i] = (images[i] + torch.from_numpy(noise)).clamp(0.0, 1.0)
        return out


def _separable_blur(image: torch.Tensor, weights: list[float]) -> torch.Tensor:
    radius = len(weights) // 2
    height, width = image.shape[-2:]
    padded = F.pad(image.unsqueeze(0), (radius, radius, 0, 0), mode="reflect")[0]
    rows = padded[..., 0:width] * weights[0]
    for k in range(1, len(weights)):  # fixed summation order: the same pixels whatever the batch
        rows = rows + padded[..., k:k + width] * weights[k]
    padded = F.pad(rows.unsqueeze(0), (0, 0, radius, radius), mode="reflect")[0]
    out = padded[..., 0:height, :] * weights[0]
    for k in range(1, len(weights)):
        out = out + padded[..., k:k + height, :] * weights[k]
    return out


class PSFBlur(AugmentTransform):
    """Convolve with a circular Gaussian PSF whose FWHM (pixels) is drawn from ``fwhm_px`` (seeing variation)."""

    name = "psf_blur"

    def __init__(self, fwhm_px: float | Sequence[float] = (1.0, 2.5)):
        self.fwhm_px = _range("psf_blur.fwhm_px", fwhm_px)

    def sample(self, rng, height_px, width_px, variant):
        return {"fwhm_px": float(rng.uniform(*self.fwhm_px))}

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        height, width = images.shape[-2:]
        out = images.clone()
        for i, p in enumerate(params):
            weights = gaussian_kernel(p["fwhm_px"])
            if len(weights) // 2 >= min(height, width):
                raise ConfigError(f"augment.psf_blur.fwhm_px: {p['fwhm_px']:.2f} is too wide for a {width}x{height} image")
            out[i] = _separable_blur(images[i], weights).clamp(0.0, 1.0)
        return out


class BrightnessContrast(AugmentTransform):
    """Brightness and contrast of the pixel intensity, the colour of every pixel kept (Lupton et al. 2004).

    With I = (R + G + B) / 3 and m the image's mean I, the target intensity is T = b · (m + c · (I − m)),
    at least 0; each pixel's three channels are multiplied by one factor T / I, lowered where needed so that
    no channel passes 1 (a bright pixel saturates as a whole instead of turning white). Their ratios, so hue
    and saturation, stay as they were; a black pixel stays black. Unlike ``ColorJitter``'s contrast, which
    adds one grey offset to the three channels, nothing here moves a pixel towards grey.
    Factors are drawn from ``[1 − x, 1 + x]``. Params: ``brightness`` b and ``contrast`` c.
    """

    name = "brightness_contrast"

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1):
        for key, value in (("brightness", brightness), ("contrast", contrast)):
            if not 0 <= value < 1:
                raise ConfigError(f"augment.brightness_contrast.{key}: {value} is not within 0..1 (1 excluded)")
        self.brightness, self.contrast = float(brightness), float(contrast)

    def sample(self, rng, height_px, width_px, variant):
        return {"brightness": float(rng.uniform(1.0 - self.brightness, 1.0 + self.brightness)),
                "contrast": float(rng.uniform(1.0 - self.contrast, 1.0 + self.contrast))}

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        out = torch.empty_like(images)
        for i, p in enumerate(params):
            image = images[i:i + 1]
            r, g, b = image[:, 0:1], image[:, 1:2], image[:, 2:3]
            intensity = (r + g).add_(b).div_(3.0)
            # The mean as a float64 sum in NumPy: nothing about the batch can change it.
            values = intensity.numpy().astype(np.float64)
            mean = float(np.float32(values.sum() / values.size))
            contrast, brightness = float(np.float32(p["contrast"])), float(np.float32(p["brightness"]))
            target = intensity.sub(mean).mul_(contrast).add_(mean).mul_(brightness).clamp_(min=0.0)
            factor = target.div_(intensity.clamp(min=1e-12))
            peak = torch.maximum(torch.maximum(r, g), b).clamp_(min=1e-12)
            factor = torch.minimum(factor, peak.reciprocal_())
            out[i:i + 1] = image * factor
        return out


# ---------------------------------------------------------------------------------------------- presets

@register_preset("color_jitter", mirrors=False)
def color_jitter(brightness: float = 0.6, contrast: float = 0.4, saturation: float = 0.3, hue: float = 0.2) -> Preset:
    """Colour jitter: brightness 0.6, contrast 0.4, saturation 0.3, hue 0.2 (random order)."""
    return Preset("color_jitter", (ColorJitter(brightness, contrast, saturation, hue),))


@register_preset("flip_color_jitter", mirrors=True)
def flip_color_jitter(p: float = 0.5, brightness: float = 0.2, contrast: float = 0.7, saturation: float = 0.5,
                      hue: float = 0.5) -> Preset:
    """Horizontal flip (p 0.5) + colour jitter: brightness 0.2, contrast 0.7, saturation 0.5, hue ±0.5."""
    return Preset("flip_color_jitter", (HorizontalFlip(p=p), ColorJitter(brightness, contrast, saturation, hue)))


@register_preset("noise", mirrors=False)
def noise(snr_low: float = 10.0, snr_high: float = 30.0) -> Preset:
    """Gaussian noise at an SNR of 10–30 (peak above sky / sigma); astronomy-safe."""
    return Preset("noise", (GaussianNoise(snr=(snr_low, snr_high)),))


@register_preset("psf_blur", mirrors=False)
def psf_blur(fwhm_low_px: float = 1.0, fwhm_high_px: float = 2.5) -> Preset:
    """Gaussian PSF blur, FWHM 1.0–2.5 px (seeing variation); astronomy-safe."""
    return Preset("psf_blur", (PSFBlur(fwhm_px=(fwhm_low_px, fwhm_high_px)),))


@register_preset("brightness_contrast", mirrors=False)
def brightness_contrast(brightness: float = 0.1, contrast: float = 0.1) -> Preset:
    """Brightness and contrast ±10 % of the intensity, every pixel's colour kept (one factor for R, G, B)."""
    return Preset("brightness_contrast", (BrightnessContrast(brightness, contrast),))
