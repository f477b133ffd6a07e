"""``flare backends``: every registered backend, per stage, and the preset set of each augmentation preset."""

from __future__ import annotations

import importlib

from rich.table import Table

from flare.cli._common import console
from flare.core.config import AugmentConfig
from flare.core.registry import all_registries

# Importing a stage package registers its backends (its __init__ imports the modules that register them).
STAGE_PACKAGES = ["flare.upscale", "flare.augment", "flare.generate", "flare.classify"]


def load_all_registries():
    for module in STAGE_PACKAGES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a stage that exists but fails to import is a bug worth seeing
                raise
    return all_registries()


def preset_set_label(stage: str, name: str) -> str:
    """The ``set`` column: an augmentation preset's set (``astro *`` when it is in the default set)."""
    if stage != "augment":
        return ""
    preset_set = AugmentConfig.preset_set_of(name)
    if preset_set is None:
        return "-"
    default_sets = AugmentConfig.model_fields["presets"].default
    return preset_set + (" *" if preset_set in default_sets else "")


def command() -> None:
    """List every registered backend per stage (the default is marked *; an augmentation preset's set too)."""
    table = Table("stage", "backend", "set", "description")
    for stage, registry in sorted(load_all_registries().items()):
        for entry in registry.entries():
            table.add_row(stage, entry.name + (" *" if entry.default else ""), preset_set_label(stage, entry.name),
                          entry.description)
    console.print(table)
