"""Stage 4: combine the real images with a seeded selection of augmented (α) and synthetic (β) images.

Input: a dataset folder whose manifest holds the base images (``base_images``) and the ``augment`` rows
(the real-augmented branch); the ``generate`` rows (the synthetic branch) come from the same manifest and/or a
second folder (``synthetic``). Either branch may be absent. Output (``combine.layout``): an ImageFolder tree
(``train/<label>/``, ``val/``, ``test/``, each split with the ``metadata.parquet`` of provenance columns that
``datasets`` reads), or Parquet / WebDataset shards per split (:mod:`flare.combine.shards`), plus a manifest
whose rows keep their id, origin, split, stage and params; val and test are the real base images copied
unchanged. The selection rules are in :mod:`flare.combine.selection` (``types``, ``samples``) and
:mod:`flare.combine.value` (``value``, the default: types ranked by a val probe); ``combine_report.json`` records
the chosen types, counts, layout and shards, and under ``value`` the feature space, the probe's baseline val
macro-F1, every type's score and the kept / dropped types of each branch.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flare.combine.imagefolder import write_imagefolder
from flare.combine.selection import choose_samples, choose_types, fill_to_target, row_type
from flare.combine.shards import write_shards
from flare.combine.value import RowRenderer, TypeValues, rank_by_value, score_types
from flare.core.config import CombineConfig
from flare.core.dataset import Dataset
from flare.core.errors import FlareError, LeakageError
from flare.core.files import atomic_write_bytes, prepare_output_dir
from flare.core.hf_columns import write_imagefolder_metadata
from flare.core.manifest import Manifest, base_images

__all__ = ["combine_datasets", "CombineResult", "select_branch"]


@dataclass
class CombineResult:
    manifest: Manifest
    chosen_types: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)  # file names under OUT/shards (layout parquet/webdataset)
    values: TypeValues | None = None  # what rule ``value`` measured (None under the other rules)

    def summary(self) -> dict[str, Any]:
        return {"chosen_types": self.chosen_types, "counts": self.counts}


def select_branch(rows: list[dict[str, Any]], fraction: float, rule: str, seed: int, branch: str,
                  values: dict[str, float] | None = None,
                  always: set[str] | frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of one branch that enter, and the types kept (all types present under the ``samples`` rule).

    Rule ``value`` ranks the types by ``values`` (:func:`flare.combine.value.rank_by_value`); the types in
    ``always`` are kept whatever their value and the fraction ranks the others. Without values (nothing could
    be measured) it keeps what rule ``types`` keeps."""
    if not rows:
        return [], []
    if rule in ("types", "value"):
        if rule == "value" and values is not None:
            ranked = {name: value for name, value in values.items() if name not in always}
            kept_types = sorted(set(rank_by_value(ranked, fraction, seed, branch)) | (set(always) & set(values)))
        else:
            kept_types = choose_types([row_type(r) for r in rows], fraction, seed, branch)
        wanted = set(kept_types)
        return [r for r in rows if row_type(r) in wanted], kept_types
    kept_ids = set(choose_samples([r["id"] for r in rows], fraction, seed, branch))
    chosen = [r for r in rows if r["id"] in kept_ids]
    return chosen, sorted({row_type(r) for r in chosen})


def exact_symmetry_types(manifest: Manifest, rows: list[dict[str, Any]]) -> set[str]:
    """The augmentation types whose every row records ``params.exact_symmetry`` (rows from before the field
    existed record nothing and are ranked like any other type)."""
    flags: dict[str, bool] = {}
    for row in rows:
        name = row_type(row)
        flags[name] = flags.get(name, True) and bool(manifest.params(row).get("exact_symmetry", False))
    return {name for name, flag in flags.items() if flag}


def _has_file(manifest: Manifest, row: dict[str, Any]) -> bool:
    """False for a lazy augmentation recipe (no file until ``flare combine --export``)."""
    return not (row["stage"] == "augment" and not manifest.params(row).get("materialised", True))


def combine_datasets(dataset: str | Path, out: str | Path, config: CombineConfig | None = None, *, seed: int = 0,
                     synthetic: str | Path | None = None, render: RowRenderer | None = None) -> CombineResult:
    """Write the combined training set of ``dataset`` (+ ``synthetic``) into ``out``; see the module doc.

    ``render(manifest, row)`` draws lazy augmentation recipes for rule ``value`` (callers pass
    ``flare.augment.loader.load_row_image``); without it a lazy branch falls back to rule ``types``."""
    config = config or CombineConfig()
    dataset_in = Dataset.open(dataset)
    source = dataset_in.manifest
    out = Path(out)
    if out.resolve() == Path(dataset).resolve():
        raise FlareError(f"combine: output {str(out)!r} must differ from the input dataset")
    base = base_images(source)
    if not len(base):
        raise FlareError(f"combine: {str(dataset)!r} has no base images (stages ingest/simulate/observe/upscale)")
    augmented = source.filter(stage="augment").records()
    synthetic_rows = [(r, source) for r in source.filter(stage="generate").records()]
    if synthetic is not None:
        other = Dataset.open(synthetic).manifest  # containment-checked like the main input
        known = {r["id"] for r, _ in synthetic_rows}
        synthetic_rows += [(r, other) for r in other.filter(stage="generate").records() if r["id"] not in known]
    held_out = {r["origin_id"] for r in base.records() if r["split"] != "train"}
    for row in augmented + [r for r, _ in synthetic_rows]:
        if row["split"] != "train" or row["origin_id"] in held_out:
            raise LeakageError(f"combine: {row['stage']} image {row['id']!r} (origin {row['origin_id']}) "
                               f"is not a train-only image; refusing to combine")

    values = None
    if config.rule == "value":
        values = score_types(base.records(), source, {
            "augment": [(r, source, _has_file(source, r)) for r in augmented],
            "generate": [(r, m, True) for r, m in synthetic_rows]}, row_type, config, seed, render,
            mirror=dataset_in.taxonomy.mirror)
    symmetries = exact_symmetry_types(source, augmented) if config.value_keep_symmetries else set()
    chosen_aug, aug_types = select_branch(augmented, config.alpha, config.rule, seed, "augment",
                                          values.values("augment") if values else None, always=symmetries)
    chosen_syn_rows, syn_types = select_branch([r for r, _ in synthetic_rows], config.beta, config.rule, seed,
                                               "generate", values.values("generate") if values else None)
    syn_manifest = {r["id"]: m for r, m in synthetic_rows}
    base_rows = base.records()
    if config.per_class_target is not None:
        real_counts = Counter(r["label"] for r in base_rows if r["split"] == "train")
        kept = {r["id"] for r in fill_to_target(real_counts, chosen_aug + chosen_syn_rows, config.per_class_target, seed)}
        chosen_aug = [r for r in chosen_aug if r["id"] in kept]
        chosen_syn_rows = [r for r in chosen_syn_rows if r["id"] in kept]

    entries = [(r, source, True) for r in base_rows]
    entries += [(r, source, _has_file(source, r)) for r in chosen_aug]
    entries += [(r, syn_manifest[r["id"]], True) for r in chosen_syn_rows]
    prepare_output_dir(out)
    shards: list[str] = []
    if config.layout == "imagefolder":
        records = write_imagefolder(out, entries)
    else:
        records, shards = write_shards(out, entries, config.layout, config.shard_size_mb, dataset_in.taxonomy)
    manifest = Manifest.from_records(records, out)
    if config.layout == "imagefolder":
        write_imagefolder_metadata(out, manifest, dataset_in.taxonomy)
    Dataset(out, manifest, dataset_in.taxonomy).write()

    counts = {f"{split}": sum(1 for r in records if r["split"] == split) for split in ("train", "val", "test")}
    counts.update({"real_train": sum(1 for r in base_rows if r["split"] == "train"), "augment": len(chosen_aug),
                   "generate": len(chosen_syn_rows), "augment_available": len(augmented),
                   "generate_available": len(synthetic_rows)})
    result = CombineResult(manifest, {"augment": aug_types, "generate": syn_types}, counts, shards, values)
    report = {"alpha": config.alpha, "beta": config.beta, "rule": config.rule, "seed": seed,
              "per_class_target": config.per_class_target, "layout": config.layout, "shards": shards,
              **result.summary()}
    if values is not None:
        report["value"] = values.report(config)
        every = {"augment": sorted({row_type(r) for r in augmented}),
                 "generate": sorted({row_type(r) for r, _ in synthetic_rows})}
        report["value"]["kept"] = result.chosen_types
        report["value"]["kept_as_exact_symmetries"] = sorted(symmetries & set(result.chosen_types["augment"]))
        report["value"]["dropped"] = {branch: [t for t in names if t not in result.chosen_types[branch]]
                                      for branch, names in every.items()}
    atomic_write_bytes(out / "combine_report.json", json.dumps(report, indent=2, sort_keys=True).encode())
    return result
