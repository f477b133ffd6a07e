"""``flare backends``: every registered backend, per stage."""

from __future__ import annotations

import importlib

from rich.table import Table

from flare.cli._common import console
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


def command() -> None:
    """List every registered backend per stage (the default is marked *)."""
    table = Table("stage", "backend", "description")
    for stage, registry in sorted(load_all_registries().items()):
        for entry in registry.entries():
            table.add_row(stage, entry.name + (" *" if entry.default else ""), entry.description)
    console.print(table)
