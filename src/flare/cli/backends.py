"""``flare backends``: every registered backend, per stage."""

from __future__ import annotations

import importlib

from rich.table import Table

from flare.cli._common import console
from flare.core.registry import all_registries

# Importing a stage's registry module registers its backends.
STAGE_REGISTRY_MODULES = ["flare.upscale.registry", "flare.augment.registry", "flare.generate.registry",
                          "flare.classify.registry"]


def load_all_registries():
    for module in STAGE_REGISTRY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a stage that exists but fails to import is a bug worth seeing
                raise
    return all_registries()


def command() -> None:
    """List every registered backend per stage (the default is marked *)."""
    table = Table("stage", "backend", "description")
    for stage, registry in sorted(load_all_registries().items()):
        for entry in registry.entries():
            table.add_row(stage, entry.name + (" *" if entry.default else ""), entry.description)
    console.print(table)
