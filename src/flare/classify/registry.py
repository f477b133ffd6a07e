"""``Registry("classify")``: backbones (``create_classifier``) and benchmark presets (``get_preset``), both
listed by ``flare backends``.

Only the registry lives here: ``backbones.py`` registers the backbones and ``presets.py`` the presets, and
``import flare.classify`` loads both. One registry holds both kinds (entry meta ``kind``: ``backbone`` or
``preset``; a preset's entry is ``preset-<name>``), so ``flare backends`` lists them under one stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from flare.core.errors import ConfigError
from flare.core.registry import Registry

if TYPE_CHECKING:  # presets.py imports this module to register the presets
    from flare.classify.presets import BenchmarkPreset

__all__ = ["CLASSIFY_REGISTRY", "register_classifier", "register_preset", "create_classifier", "list_classifiers",
           "get_preset", "list_presets"]

CLASSIFY_REGISTRY = Registry("classify")
_PRESET_PREFIX = "preset-"


def register_classifier(name: str, *, description: str = "", default: bool = False,
                        **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a backbone factory (options ``num_classes``, ``image_size_px``) under ``name``."""
    return CLASSIFY_REGISTRY.register(name, description=description, default=default, kind="backbone", **meta)


def register_preset(name: str, *,
                    description: str) -> Callable[[Callable[[], BenchmarkPreset]], Callable[[], BenchmarkPreset]]:
    """Decorator registering a benchmark preset factory as ``preset-<name>``."""
    return CLASSIFY_REGISTRY.register(f"{_PRESET_PREFIX}{name}", description=f"preset: {description}", kind="preset")


def _kind(name: str) -> str | None:
    return CLASSIFY_REGISTRY.get(name).meta.get("kind")


def create_classifier(name: str, num_classes: int, image_size_px: int) -> Any:
    """A randomly initialised backbone ``name`` with ``num_classes`` outputs."""
    if _kind(name) != "backbone":
        raise ConfigError(f"benchmark.backbones: {name!r} is a preset, not a backbone")
    return CLASSIFY_REGISTRY.create(name, num_classes=num_classes, image_size_px=image_size_px)


def list_classifiers(pattern: str = "*") -> list[str]:
    return [n for n in CLASSIFY_REGISTRY.list(pattern) if _kind(n) == "backbone"]


def list_presets(pattern: str = "*") -> list[str]:
    return [n.removeprefix(_PRESET_PREFIX) for n in CLASSIFY_REGISTRY.list(f"{_PRESET_PREFIX}{pattern}")
            if _kind(n) == "preset"]


def get_preset(name: str) -> BenchmarkPreset:
    known = list_presets()
    if name not in known:
        raise ConfigError(f"benchmark.preset: {name!r} is not one of {', '.join(known)}")
    return CLASSIFY_REGISTRY.create(f"{_PRESET_PREFIX}{name}")
