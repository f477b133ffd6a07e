"""Stage 4: selective combination of real, augmented (α) and synthetic (β) images into an ImageFolder.

The kept types are the ones a val probe scores highest (rule ``value``, :mod:`flare.combine.value`), a seeded
shuffle (``types``, the paper's rule) or a per-sample ratio (``samples``): :mod:`flare.combine.selection`."""

from flare.combine.selection import choose_samples, choose_types, fill_to_target, row_type, take_count
from flare.combine.stage import CombineResult, combine_datasets, select_branch
from flare.combine.value import TypeValues, rank_by_value, score_types

__all__ = ["combine_datasets", "CombineResult", "select_branch", "choose_types", "choose_samples", "fill_to_target",
           "row_type", "take_count", "score_types", "rank_by_value", "TypeValues"]
