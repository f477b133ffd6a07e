"""``Registry("classify")``: backbones (``create_classifier``) and benchmark presets, listed by ``flare backends``."""

from __future__ import annotations

import functools
from typing import Any

from flare.classify.backbones import BACKBONES, build_backbone
from flare.classify.presets import PRESETS, BenchmarkPreset
from flare.core.errors import ConfigError
from flare.core.registry import Registry

__all__ = ["CLASSIFY_REGISTRY", "register_classifier", "create_classifier", "list_classifiers", "get_preset",
           "list_presets"]

CLASSIFY_REGISTRY = Registry("classify")
register_classifier = CLASSIFY_REGISTRY.register


def _backbone_factory(name: str, num_classes: int = 2, image_size_px: int = 64) -> Any:
    return build_backbone(name, num_classes, image_size_px)[0]


for _name, (_architecture, _extra, _) in BACKBONES.items():
    register_classifier(_name, description=f"backbone: timm {_architecture}" + (" (narrow, 1 block per stage)"
                        if _extra.get("layers") else ""), default=_name == "resnet18", kind="backbone")(
        functools.partial(_backbone_factory, _name))

for _preset in PRESETS.values():
    register_classifier(f"preset-{_preset.name}", description=f"preset: {_preset.description}",
                        kind="preset")(functools.partial(lambda p: p, _preset))


def create_classifier(name: str, num_classes: int, image_size_px: int) -> Any:
    """A randomly initialised backbone ``name`` with ``num_classes`` outputs."""
    entry = CLASSIFY_REGISTRY.get(name)
    if entry.meta.get("kind") != "backbone":
        raise ConfigError(f"benchmark.backbones: {name!r} is a preset, not a backbone")
    return entry.factory(num_classes=num_classes, image_size_px=image_size_px)


def list_classifiers(pattern: str = "*") -> list[str]:
    return [n for n in CLASSIFY_REGISTRY.list(pattern) if CLASSIFY_REGISTRY.get(n).meta.get("kind") == "backbone"]


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> BenchmarkPreset:
    if name not in PRESETS:
        raise ConfigError(f"benchmark.preset: {name!r} is not one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
