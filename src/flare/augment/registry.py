"""The augment registry: named presets (``register_preset``, ``create_preset(name, **options)``,
``list_presets(pattern)``), listed by ``flare backends``.

Only the registry lives here; the presets register themselves next to their transforms (``geometric.py``,
``photometric.py``) and ``import flare.augment`` loads them. ``ORIGINAL_PRESETS`` names the five
augmentation types of the original work: horizontal flip; colour jitter (brightness 0.6, contrast 0.4,
saturation 0.3, hue 0.2); flip + colour jitter (brightness 0.2, contrast 0.7, saturation 0.5, hue ±0.5);
random resized crop (scale 0.75–0.90); random perspective (distortion 0.2, p 0.5). The others are quarter
turns, vertical flips and two astronomy-safe photometric ones (noise at an SNR, PSF blur).
"""

from __future__ import annotations

from typing import Any, Callable

from flare.augment.base import Preset
from flare.core.registry import Registry

__all__ = ["AUGMENT_REGISTRY", "register_preset", "create_preset", "list_presets", "ORIGINAL_PRESETS"]

AUGMENT_REGISTRY = Registry("augment")
ORIGINAL_PRESETS = ["hflip", "color_jitter", "flip_color_jitter", "resized_crop", "perspective"]


def register_preset(name: str, *, description: str = "", default: bool = False,
                    **meta: Any) -> Callable[[Callable[..., Preset]], Callable[..., Preset]]:
    """Decorator registering a preset factory under ``name`` (``mirrors=`` meta: whether it can mirror)."""
    return AUGMENT_REGISTRY.register(name, description=description, default=default, **meta)


def create_preset(name: str, **options: Any) -> Preset:
    """Build preset ``name`` (UnknownBackendError lists the known ones; ConfigError an option it lacks)."""
    return AUGMENT_REGISTRY.create(name, **options)


def list_presets(pattern: str = "*") -> list[str]:
    return AUGMENT_REGISTRY.list(pattern)
