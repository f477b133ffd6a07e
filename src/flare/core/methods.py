"""The benchmark's method names and their roles, shared by the stage that trains them (classify) and the one that
renders them (report), which may not import each other."""

from __future__ import annotations

__all__ = ["METHODS", "OPTIONAL_METHODS", "BASELINES", "UPPER_BOUNDS", "ONLINE_METHODS", "METHOD_ORDER",
           "is_upper_bound"]

METHODS = ("Raw_LR", "Raw_HR", "Raw_HR_online", "Raw_Aug", "T2I_Aug", "FLARE")
OPTIONAL_METHODS = ("Synth_Only", "Oracle_HR")
BASELINES = ("Raw_LR", "Raw_HR", "Raw_HR_online", "Raw_Aug", "T2I_Aug")  # what FLARE must beat (best on val)
# Trained and tested on the HR truth: a ceiling for super-resolution, not a method a user can run.
UPPER_BOUNDS = ("Oracle_HR",)
ONLINE_METHODS = ("Raw_HR_online",)  # a random rot90 × flip view per sample
# Display order: baselines, FLARE, the opt-in synthetic-only run, then the upper bound.
METHOD_ORDER = (*METHODS, "Synth_Only", *UPPER_BOUNDS)


def is_upper_bound(method: str) -> bool:
    return method in UPPER_BOUNDS
