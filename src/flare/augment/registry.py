"""Named augmentation presets: the five types of the original work plus quarter turns, vertical flips and two
astronomy-safe photometric ones. ``flare backends`` lists them; ``create_preset(name)`` builds one.

Original work (its five augmentation types): horizontal flip; colour jitter (brightness 0.6, contrast 0.4,
saturation 0.3, hue 0.2); flip + colour jitter (brightness 0.2, contrast 0.7, saturation 0.5, hue ±0.5);
random resized crop (scale 0.75–0.90); random perspective (distortion 0.2, p 0.5).
"""

from __future__ import annotations

from flare.augment.base import Preset
from flare.augment.geometric import HorizontalFlip, RandomPerspective, RandomResizedCrop, Rot90, VerticalFlip
from flare.augment.photometric import ColorJitter, GaussianNoise, PSFBlur
from flare.core.registry import Registry

__all__ = ["AUGMENT_REGISTRY", "register_preset", "create_preset", "list_presets", "ORIGINAL_PRESETS"]

AUGMENT_REGISTRY = Registry("augment")
register_preset = AUGMENT_REGISTRY.register
ORIGINAL_PRESETS = ["hflip", "color_jitter", "flip_color_jitter", "resized_crop", "perspective"]


def create_preset(name: str, **options) -> Preset:
    return AUGMENT_REGISTRY.create(name, **options)


def list_presets(pattern: str = "*") -> list[str]:
    return AUGMENT_REGISTRY.list(pattern)


@register_preset("hflip", default=True, mirrors=True)
def hflip() -> Preset:
    """Horizontal flip (always; one distinct variant). Swaps mirror-pair labels."""
    return Preset("hflip", (HorizontalFlip(p=1.0),))


@register_preset("color_jitter", mirrors=False)
def color_jitter(brightness: float = 0.6, contrast: float = 0.4, saturation: float = 0.3, hue: float = 0.2) -> Preset:
    """Colour jitter: brightness 0.6, contrast 0.4, saturation 0.3, hue 0.2 (random order)."""
    return Preset("color_jitter", (ColorJitter(brightness, contrast, saturation, hue),))


@register_preset("flip_color_jitter", mirrors=True)
def flip_color_jitter(p: float = 0.5, brightness: float = 0.2, contrast: float = 0.7, saturation: float = 0.5,
                      hue: float = 0.5) -> Preset:
    """Horizontal flip (p 0.5) + colour jitter: brightness 0.2, contrast 0.7, saturation 0.5, hue ±0.5."""
    return Preset("flip_color_jitter", (HorizontalFlip(p=p), ColorJitter(brightness, contrast, saturation, hue)))


@register_preset("resized_crop", mirrors=False)
def resized_crop(scale_low: float = 0.75, scale_high: float = 0.90) -> Preset:
    """Random resized crop, area scale 0.75–0.90, aspect 3/4–4/3, back to the input size."""
    return Preset("resized_crop", (RandomResizedCrop(scale=(scale_low, scale_high)),))


@register_preset("perspective", mirrors=False)
def perspective(distortion_scale: float = 0.2, p: float = 0.5) -> Preset:
    """Random perspective, distortion 0.2, p 0.5 (black fill)."""
    return Preset("perspective", (RandomPerspective(distortion_scale=distortion_scale, p=p),))


@register_preset("rot90", mirrors=False)
def rot90() -> Preset:
    """Quarter turns k = 1, 2, 3 (three distinct variants). Labels are kept: a rotation does not mirror."""
    return Preset("rot90", (Rot90(),))


@register_preset("vflip", mirrors=True)
def vflip() -> Preset:
    """Vertical flip (always; one distinct variant). Swaps mirror-pair labels."""
    return Preset("vflip", (VerticalFlip(p=1.0),))


@register_preset("noise", mirrors=False)
def noise(snr_low: float = 10.0, snr_high: float = 30.0) -> Preset:
    """Gaussian noise at an SNR of 10–30 (peak above sky / sigma); astronomy-safe."""
    return Preset("noise", (GaussianNoise(snr=(snr_low, snr_high)),))


@register_preset("psf_blur", mirrors=False)
def psf_blur(fwhm_low_px: float = 1.0, fwhm_high_px: float = 2.5) -> Preset:
    """Gaussian PSF blur, FWHM 1.0–2.5 px (seeing variation); astronomy-safe."""
    return Preset("psf_blur", (PSFBlur(fwhm_px=(fwhm_low_px, fwhm_high_px)),))
