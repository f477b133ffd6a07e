"""Origin-level stratified train/val/test split, seeded, made before anything is generated.

All images that share an ``origin_id`` land in the same split, so no copy, crop or augmentation of one
object can sit on both sides. Stratification is by the origin's label; each class with at least three origins
gets at least one in each non-empty split.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from flare.core.dataset import Dataset
from flare.core.manifest import Manifest
from flare.core.seeding import derive_seed

__all__ = ["assign_splits", "train_subset_origins", "write_train_subset"]


def assign_splits(frame: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """Return a ``split`` value for every row of ``frame`` (columns ``origin_id`` and ``label``)."""
    origin_label = (frame.groupby("origin_id", sort=True)["label"]
                    .agg(lambda labels: Counter(labels).most_common(1)[0][0]))
    names = [name for name in ("train", "val", "test") if fractions.get(name, 0) > 0]
    assignment: dict[str, str] = {}
    for label in sorted(origin_label.unique()):
        origins = sorted(origin_label.index[origin_label == label])
        rng = np.random.default_rng(derive_seed(seed, "split", label))
        order = [origins[i] for i in rng.permutation(len(origins))]
        counts = _allocate(len(order), [fractions[name] for name in names])
        start = 0
        for name, count in zip(names, counts):
            for origin in order[start:start + count]:
                assignment[origin] = name
            start += count
    return frame["origin_id"].map(assignment).astype("string")


def _allocate(n: int, fractions: list[float]) -> list[int]:
    """Largest-remainder allocation of ``n`` items; every split gets one when ``n`` allows, train first."""
    total = sum(fractions)
    raw = [n * f / total for f in fractions]
    counts = [int(x) for x in raw]
    for index in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[index] += 1
    if n >= len(fractions):
        for index in range(len(counts)):
            if counts[index] == 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[index] += 1
    return counts


def train_subset_origins(frame: pd.DataFrame, fraction: float, seed: int) -> set[str]:
    """The train origins kept at ``fraction``: per class, a seeded order of its train origins cut at
    ``ceil(fraction · n_c)`` (at least one). The order does not depend on ``fraction``, so the subsets are
    nested: the 10 % subset lies inside the 25 % one. Val and test are never subsampled."""
    train = frame[frame["split"] == "train"]
    origin_label = train.groupby("origin_id", sort=True)["label"].agg(lambda labels: Counter(labels).most_common(1)[0][0])
    kept: set[str] = set()
    for label in sorted(origin_label.unique()):
        origins = sorted(origin_label.index[origin_label == label])
        rng = np.random.default_rng(derive_seed(seed, "train-fraction", label))
        order = [origins[i] for i in rng.permutation(len(origins))]
        kept.update(order[:max(1, int(np.ceil(fraction * len(order) - 1e-9)))])
    return kept


def write_train_subset(dataset: str | Path, out: str | Path, fraction: float, seed: int) -> int:
    """Write ``out`` as the dataset with only the :func:`train_subset_origins` of its train split (val and test
    whole). Rows point at the parent's files (absolute paths inside a FLARE dataset folder, which the
    containment rule accepts); nothing is copied. Returns the number of train rows kept."""
    parent = Dataset.open(dataset)
    frame = parent.manifest.frame
    kept = train_subset_origins(frame, fraction, seed)
    mask = (frame["split"] != "train") | frame["origin_id"].isin(kept)
    out = Path(out)
    subset = Manifest(frame[mask].reset_index(drop=True), parent.root).rebase(out)
    Dataset(out, subset, parent.taxonomy).write()
    return int((subset.frame["split"] == "train").sum())
