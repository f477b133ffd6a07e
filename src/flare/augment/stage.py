"""Stage 2: recorded, replayable, label-aware augmentation of the train split.

For every train base image (``base_images``: upscaled if stage 1 ran, else the source rows), every preset in
``augment.presets`` and every variant ``v < K`` (capped for deterministic presets: hflip has one distinct
outcome, rot90 three), the stage samples a recipe from ``derive_seed(run_seed, "augment", parent_id,
"<preset>_<v>")`` and records it in the row's ``params``. A recipe that mirrors the image swaps mirror-pair
labels from the dataset's ``taxonomy.yaml`` (clockwise ↔ anticlockwise spiral). A preset listed in
``augment.unsafe`` for a class is skipped for that class. Val/test images are never augmented.

Modes: ``materialised`` writes the files (batched tensor rendering, threaded decode/encode); ``lazy`` writes
only the recipes (``sha256`` empty, ``params.materialised`` false) for :mod:`flare.augment.loader` to render
on the fly; :func:`export_lazy` materialises them later. :func:`replay_dataset` re-renders every augment row
from the manifest alone and checks the bytes against the recorded sha256.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from flare.augment.base import Preset, apply_recipes, recipe_mirrors
from flare.augment.encode import PNG_FILTER, PNG_STRATEGY, encode_variant, fpng_version
from flare.augment.registry import create_preset, list_presets
from flare.core.config import AugmentConfig, ExecutorConfig
from flare.core.dataset import Dataset, derive_row
from flare.core.errors import ConfigError, ManifestError
from flare.core.files import output_is_valid, prepare_output_dir, safe_join, sha256_bytes, write_rerenderable_bytes
from flare.core.io import load_rgb
from flare.core.manifest import Manifest, base_images, derived_id
from flare.core.seeding import derive_seed
from flare.core.taxonomy import Taxonomy
from flare.executors import map_batches

__all__ = ["AugmentWorker", "augment_dataset", "replay_dataset", "export_lazy", "ReplayReport",
           "encode_options", "plan_variants", "STAGE", "BACKEND"]

STAGE = "augment"
BACKEND = "flare.augment"
_SUFFIX = {"png": "png", "jpeg": "jpg", "webp": "webp"}


def encode_options(config: AugmentConfig) -> dict[str, Any]:
    """What ``encode_image`` needs to reproduce a file byte for byte; recorded in every row."""
    if config.format == "png" and config.png_encoder == "fpng":
        return {"format": "png", "encoder": "fpng", "fpng_version": fpng_version()}
    if config.format == "png" and config.png_encoder == "imagecodecs":
        return {"format": "png", "encoder": "imagecodecs", "png_compress_level": config.png_compress_level,
                "png_filter": PNG_FILTER, "png_strategy": PNG_STRATEGY}
    if config.format == "png":
        return {"format": "png", "encoder": "pillow", "png_compress_level": config.png_compress_level}
    if config.format == "jpeg":
        return {"format": "jpeg", "quality": config.quality}
    return {"format": "webp", "quality": config.quality, "lossless": config.webp_lossless}


def _check_presets(names: list[str]) -> None:
    known = list_presets()
    for name in names:
        if name not in known:
            raise ConfigError(f"augment.presets: {name!r} is not one of {', '.join(known)}")


def plan_variants(preset: Preset, k: int) -> int:
    """How many variants a preset makes per image: K, capped at a deterministic preset's distinct outcomes."""
    cap = preset.max_variants
    return k if cap is None else min(k, cap)


class AugmentWorker:
    """Parent rows → augment rows (rendered and written unless ``mode == "lazy"``); built once per worker."""

    def __init__(self, root: str, presets: list[str], k: int, run_seed: int, mode: str, encode: dict[str, Any],
                 mirror_pairs: list[list[str]] | None = None, fine_to_macro: dict[str, str] | None = None,
                 unsafe: dict[str, list[str]] | None = None, batch_size: int = 32, workers: int = 2):
        self.root = Path(root)
        self.presets = {name: create_preset(name) for name in presets}
        self.k, self.run_seed, self.mode, self.encode = k, run_seed, mode, dict(encode)
        self.taxonomy = Taxonomy("dataset", dict(fine_to_macro or {}), tuple(tuple(p) for p in mirror_pairs or ()))
        self.unsafe = {name: set(classes) for name, classes in (unsafe or {}).items()}
        self.batch_size, self.workers = batch_size, workers
        self.previous = self._previous_rows()

    def _previous_rows(self) -> dict[str, tuple[str, str]]:
        """id → (params JSON, sha256) of augment rows a completed earlier run recorded in this folder."""
        if not Manifest.exists(self.root):
            return {}
        try:
            frame = Manifest.read(self.root).filter(stage=STAGE).frame
        except ManifestError:
            return {}
        return {str(i): (str(p), str(h)) for i, p, h in zip(frame["id"], frame["params"], frame["sha256"]) if h}

    def _image_size(self, path: Path) -> tuple[int, int]:
        with Image.open(path) as image:
            return image.height, image.width

    def _plan(self, row: dict[str, Any], height: int, width: int) -> list[dict[str, Any]]:
        records = []
        contained: set[str] = set()  # labels whose output folder this row's id was checked against
        for name, preset in self.presets.items():
            if row["label"] in self.unsafe.get(name, ()):
                continue
            for variant in range(plan_variants(preset, self.k)):
                seed = derive_seed(self.run_seed, STAGE, row["id"], f"{name}_{variant}")
                recipe = preset.recipe(seed, height, width, variant)
                mirrored = recipe_mirrors(recipe)
                label = self.taxonomy.mirror(row["label"]) if mirrored else row["label"]
                macro = self.taxonomy.fine_to_macro.get(label, row.get("macro_label") or label)
                image_id = derived_id(row["id"], STAGE, f"_{name}_{variant}")
                suffix = _SUFFIX[self.encode["format"]]
                relative = f"{STAGE}/{label}/{image_id}.{suffix}"
                if label not in contained:
                    # A row that slipped past Dataset.open still cannot write outside. One check per label and
                    # row: its other variants differ only by the preset name and variant number in the file
                    # name (safe_join resolves the path, ~40 µs, too dear to pay for every variant).
                    safe_join(self.root, relative)
                    contained.add(label)
                records.append(derive_row(
                    row, id=image_id, path=relative, sha256="",
                    label=label, macro_label=macro, split="train", stage=STAGE, operation=name, seed=seed,
                    backend=BACKEND,
                    params={"preset": name, "variant": variant, "recipe": recipe, "mirrored": mirrored,
                            "parent_label": row["label"], "size_px": [height, width], "encode": self.encode,
                            "materialised": self.mode != "lazy", "run_seed": self.run_seed}))
        return records

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = [{k: (None if not isinstance(v, (str, list)) and pd.isna(v) else v) for k, v in r.items()}
                for r in batch.to_dict("records")]
        paths = [self._resolve(r["path"]) for r in rows]
        if self.mode == "lazy":
            with ThreadPoolExecutor(self.workers) as pool:
                sizes = list(pool.map(self._image_size, paths))
            return _as_frame([rec for row, (h, w) in zip(rows, sizes) for rec in self._plan(row, h, w)])
        with ThreadPoolExecutor(self.workers) as pool:
            images = list(pool.map(load_rgb, paths))
            plans = [self._plan(row, *image.shape[:2]) for row, image in zip(rows, images)]
            todo: list[tuple[dict[str, Any], np.ndarray]] = []
            reused = list(pool.map(self._reuse, [rec for plan in plans for rec in plan]))
            flags = iter(reused)
            for plan, image in zip(plans, images):
                todo += [(rec, image) for rec in plan if not next(flags)]
            # Chunks of one preset each batch best. Each task renders one chunk (torch releases the GIL within
            # each op) and encodes it, so the threads overlap both.
            todo.sort(key=lambda item: item[0]["operation"])
            chunks = [todo[start:start + self.batch_size] for start in range(0, len(todo), self.batch_size)]
            list(pool.map(self._render_and_write, chunks))
        return _as_frame([rec for plan in plans for rec in plan])

    def _render_and_write(self, chunk: list[tuple[dict[str, Any], np.ndarray]]) -> None:
        tensors = [torch.from_numpy(image).permute(2, 0, 1) for _, image in chunk]
        # The JSON round trip makes the parameters exactly those replay will read from the manifest.
        recipes = [json.loads(json.dumps(record["params"]["recipe"])) for record, _ in chunk]
        for (record, _), image in zip(chunk, apply_recipes(tensors, recipes)):
            record["sha256"] = self._write(record, image)

    def _resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def _reuse(self, record: dict[str, Any]) -> bool:
        """Keep a file an earlier run recorded with the same params and whose bytes still match the record;
        anything else (other params, partial or foreign file) is rendered again."""
        previous = self.previous.get(record["id"])
        if previous is None or previous[0] != json.dumps(record["params"], sort_keys=True):
            return False
        if not output_is_valid(safe_join(self.root, record["path"]), previous[1]):
            return False
        record["sha256"] = previous[1]
        return True

    def _write(self, record: dict[str, Any], image: torch.Tensor) -> str:
        data = encode_variant(image.permute(1, 2, 0).contiguous().numpy(), self.encode)
        write_rerenderable_bytes(self.root / record["path"], data)  # checked by safe_join in _plan
        return sha256_bytes(data)


def _as_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows with JSON text in ``params``/``parent_ids``, so any executor can move or checkpoint them."""
    for record in records:
        record["params"] = json.dumps(record["params"], sort_keys=True)
        record["parent_ids"] = json.dumps(record["parent_ids"])
    return pd.DataFrame(records)


def augment_dataset(dataset: str | Path, out: str | Path, config: AugmentConfig | None = None, *, seed: int = 0,
                    executor: ExecutorConfig | None = None) -> Manifest:
    """Augment the train split of ``dataset`` into ``out``; returns (and writes) the output manifest.

    The output manifest holds the input rows (paths rebased) plus one ``augment`` row per variant.
    """
    config = config or AugmentConfig()
    _check_presets(config.presets)
    for name in config.unsafe:
        if name not in config.presets:
            raise ConfigError(f"augment.unsafe: {name!r} is not one of the chosen presets {', '.join(config.presets)}")
    out = Path(out)
    prepare_output_dir(out)
    derived = Dataset.open(dataset).derive(out)
    source, taxonomy = derived.manifest, derived.taxonomy
    parents = base_images(source).filter(split="train")
    if not len(parents):
        raise ManifestError(f"augment: {str(dataset)!r} has no train images to augment")
    worker_kwargs = {
        "root": str(out), "presets": list(config.presets), "k": config.k, "run_seed": seed, "mode": config.mode,
        "encode": encode_options(config), "unsafe": {k: list(v) for k, v in config.unsafe.items()},
        "mirror_pairs": [list(p) for p in taxonomy.mirror_pairs],
        "fine_to_macro": dict(taxonomy.fine_to_macro),
        "batch_size": config.batch_size, "workers": config.workers,
    }
    new_rows = map_batches(AugmentWorker, parents.frame, worker_kwargs=worker_kwargs, executor=executor,
                           description=f"augment: {config.mode}", checkpoint_dir=out)
    manifest = source.append(new_rows.to_dict("records") if len(new_rows) else [])
    derived.with_manifest(manifest).write()
    return manifest


@dataclass
class ReplayReport:
    """Outcome of :func:`replay_dataset`: rows re-rendered, and those whose bytes differ from the record."""

    rendered: int = 0
    mismatched: list[str] = field(default_factory=list)
    materialised: int = 0  # lazy rows written for the first time

    @property
    def ok(self) -> bool:
        return not self.mismatched


def _parent_lookup(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in manifest.records()}


def render_rows(manifest: Manifest, rows: list[dict[str, Any]], lookup: dict[str, dict[str, Any]] | None = None,
                batch_size: int = 32, workers: int = 2) -> list[np.ndarray]:
    """Render augment rows from their recorded recipes and parents' files: ``(H, W, 3)`` uint8 arrays."""
    lookup = lookup if lookup is not None else _parent_lookup(manifest)
    parent_paths = []
    for row in rows:
        parents = Manifest.parents(row)
        if not parents or parents[0] not in lookup:
            raise ManifestError(f"augment: row {row['id']!r} has no parent row in {str(manifest.root)!r}")
        parent_paths.append(manifest.resolve(lookup[parents[0]]["path"]))
    out: list[np.ndarray] = []
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            images = list(pool.map(load_rgb, parent_paths[start:start + batch_size]))
            tensors = [torch.from_numpy(image).permute(2, 0, 1) for image in images]
            recipes = [manifest.params(row)["recipe"] for row in chunk]
            out += [t.permute(1, 2, 0).contiguous().numpy() for t in apply_recipes(tensors, recipes)]
    return out


def replay_dataset(dataset: str | Path, *, check_only: bool = False, batch_size: int = 32,
                   workers: int = 2) -> ReplayReport:
    """Re-render every augment row of ``dataset`` from its recorded recipe; rewrite its file unless
    ``check_only``. Materialised rows must reproduce their recorded sha256; lazy rows are only counted.
    The manifest is read through :meth:`Dataset.open` (containment check) and every write goes through
    :func:`safe_join`."""
    manifest = Dataset.open(dataset).manifest
    rows = [r for r in manifest.records() if r["stage"] == STAGE and manifest.params(r).get("materialised", True)]
    report = ReplayReport()
    lookup = _parent_lookup(manifest)
    for start in range(0, len(rows), batch_size * 4):
        chunk = rows[start:start + batch_size * 4]
        arrays = render_rows(manifest, chunk, lookup, batch_size, workers)
        for row, array in zip(chunk, arrays):
            data = encode_variant(array, manifest.params(row)["encode"])
            report.rendered += 1
            if sha256_bytes(data) != row["sha256"]:
                report.mismatched.append(row["id"])
            elif not check_only:
                write_rerenderable_bytes(safe_join(manifest.root, row["path"]), data)
    return report


def export_lazy(dataset: str | Path, *, batch_size: int = 32, workers: int = 2) -> Manifest:
    """Materialise lazy augment rows of ``dataset`` (files at their planned paths); rewrites the manifest.
    Read through :meth:`Dataset.open` (containment check); every write goes through :func:`safe_join`."""
    manifest = Dataset.open(dataset).manifest
    records = manifest.records()
    lazy = [r for r in records if r["stage"] == STAGE and not manifest.params(r).get("materialised", True)]
    lookup = {r["id"]: r for r in records}
    for start in range(0, len(lazy), batch_size * 4):
        chunk = lazy[start:start + batch_size * 4]
        for row, array in zip(chunk, render_rows(manifest, chunk, lookup, batch_size, workers)):
            params = manifest.params(row)
            data = encode_variant(array, params["encode"])
            write_rerenderable_bytes(safe_join(manifest.root, row["path"]), data)
            row["sha256"] = sha256_bytes(data)
            row["params"] = {**params, "materialised": True}
    if lazy:
        manifest = Manifest.from_records(records, manifest.root)
        manifest.write()
    return manifest
