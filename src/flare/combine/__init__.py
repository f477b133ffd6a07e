"""Stage 4: selective combination of real, augmented (α) and synthetic (β) images into an ImageFolder."""

from flare.combine.selection import choose_samples, choose_types, fill_to_target, row_type, take_count
from flare.combine.stage import CombineResult, combine_datasets, select_branch

__all__ = ["combine_datasets", "CombineResult", "select_branch", "choose_types", "choose_samples", "fill_to_target",
           "row_type", "take_count"]
