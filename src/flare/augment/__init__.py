"""Stage 2: recorded, replayable, label-aware augmentation (sample parameters, then apply them)."""

from flare.augment import geometric, photometric  # noqa: F401 - they register the presets
from flare.augment.base import AugmentTransform, Preset, apply_recipes, recipe_mirrors
from flare.augment.registry import create_preset, list_presets, register_preset
from flare.augment.stage import AugmentWorker, augment_dataset, export_lazy, replay_dataset

__all__ = ["AugmentTransform", "Preset", "apply_recipes", "recipe_mirrors", "create_preset", "list_presets",
           "register_preset", "AugmentWorker", "augment_dataset", "export_lazy", "replay_dataset"]
