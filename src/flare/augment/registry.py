"""The augment registry: named presets (``register_preset``, ``create_preset(name, **options)``,
``list_presets(pattern)``), listed by ``flare backends``.

Only the registry lives here; the presets register themselves next to their transforms (``geometric.py``,
``photometric.py``) and ``import flare.augment`` loads them. Which presets run by default is a *set*
(``AugmentConfig.PRESET_SETS``, the one home of that default): ``astro`` (exact sky symmetries and what
observations vary by: D4 views, small shift/scale, PSF blur, noise, chromaticity-keeping brightness/contrast)
and ``paper``, the five augmentation types of the original work (horizontal flip; colour jitter; flip + colour
jitter; random resized crop; random perspective), kept for reproduction. ``ORIGINAL_PRESETS`` is that ``paper`` set.
"""

from __future__ import annotations

from typing import Any, Callable

from flare.augment.base import Preset
from flare.core.config import AugmentConfig
from flare.core.registry import Registry

__all__ = ["AUGMENT_REGISTRY", "register_preset", "create_preset", "list_presets", "ORIGINAL_PRESETS"]

AUGMENT_REGISTRY = Registry("augment")
ORIGINAL_PRESETS = list(AugmentConfig.PRESET_SETS["paper"])


def register_preset(name: str, *, description: str = "", default: bool = False,
                    **meta: Any) -> Callable[[Callable[..., Preset]], Callable[..., Preset]]:
    """Decorator registering a preset factory under ``name`` (``mirrors=`` meta: whether it can mirror)."""
    return AUGMENT_REGISTRY.register(name, description=description, default=default, **meta)


def create_preset(name: str, **options: Any) -> Preset:
    """Build preset ``name`` (UnknownBackendError lists the known ones; ConfigError an option it lacks)."""
    return AUGMENT_REGISTRY.create(name, **options)


def list_presets(pattern: str = "*") -> list[str]:
    return AUGMENT_REGISTRY.list(pattern)
