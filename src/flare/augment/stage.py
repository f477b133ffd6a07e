"""Stage 2: recorded, replayable, label-aware augmentation of the train split.

For every train base image (``base_images``: upscaled if stage 1 ran, else the source rows), every preset in
``augment.presets`` and every variant ``v < K`` (capped for deterministic presets: hflip has one distinct
outcome, rot90 three), the stage samples a recipe from ``derive_seed(run_seed, "augment", parent_id,
"<preset>_<v>")`` and records it in the row's ``params``. A recipe that mirrors the image swaps mirror-pair
labels from the dataset's ``taxonomy.yaml`` (clockwise ↔ anticlockwise spiral). A preset listed in
``augment.unsafe`` for a class is skipped for that class. Val/test images are never augmented.

Modes: ``materialised`` writes the images (batched tensor rendering, threaded decode/encode); ``lazy`` writes
only the recipes (``sha256`` empty, ``params.materialised`` false) for :mod:`flare.augment.loader` to render
on the fly; :func:`export_lazy` materialises them later. :func:`replay_dataset` re-renders every augment row
from the manifest alone and checks the bytes against the recorded sha256.

Layouts of materialised images (``augment.layout``): ``files`` writes ``augment/<label>/<id>.<ext>``, one file
per variant; ``parquet`` and ``webdataset`` write shards (:mod:`flare.core.image_shards`),
``shards/augment-NNNNN-of-NNNNN.parquet`` (or ``.tar``), each holding the variants of a run of consecutive
parent images (sorted by id) sized to about ``augment.shard_size_mb`` from the encoded size of the first
parents' variants. A shard is one task of the executor (:class:`AugmentShardWorker`): written atomically,
skipped on a re-run when complete, so a killed run resumes shard by shard to the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from PIL import Image

from flare.augment.base import Preset, apply_recipes, recipe_is_exact_symmetry, recipe_mirrors
from flare.augment.encode import PNG_FILTER, PNG_STRATEGY, encode_variant, fpng_version
from flare.augment.registry import create_preset, list_presets
from flare.core.config import AugmentConfig, ExecutorConfig
from flare.core.dataset import Dataset, derive_row
from flare.core.errors import ConfigError, ManifestError
from flare.core.files import output_is_valid, prepare_output_dir, safe_join, sha256_bytes, write_rerenderable_bytes
from flare.core.hf_columns import METADATA_NAME, ExportColumns, write_imagefolder_metadata
from flare.core.image_shards import (SHARDS_DIR, ShardRow, ShardWriter, complete_shard, member_path,
                                     open_image_source, plan_key, remove_stale_shards, shard_file_name,
                                     split_member, write_shard)
from flare.core.io import load_rgb
from flare.core.manifest import SPLITS, Manifest, base_images, derived_id
from flare.core.seeding import derive_seed
from flare.core.shard import parse_shard, select_shard
from flare.core.taxonomy import Taxonomy
from flare.executors import map_batches

__all__ = ["AugmentWorker", "AugmentShardWorker", "augment_dataset", "replay_dataset", "export_lazy",
           "ReplayReport", "encode_options", "plan_variants", "one_torch_thread", "shard_plan_key", "shard_order",
           "STAGE", "BACKEND", "SHARD_FORMAT_VERSION"]

STAGE = "augment"
BACKEND = "flare.augment"
_SUFFIX = {"png": "png", "jpeg": "jpg", "webp": "webp"}
SHARD_FORMAT_VERSION = 1  # bump when the same rows would give other shard bytes
_SHARD_SAMPLE_PARENTS = 4  # parents whose variants are encoded to size the shards
_SHARD_GROUP_PARENTS = 16  # parents a thread renders at a time inside a shard (as an executor batch of files)


_torch_threads_lock = threading.Lock()
_torch_threads_state = {"users": 0, "before": 1}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch ops run on one intra-op thread inside (the previous count is restored when the last user leaves).

    The stage parallelises over images with its own ``augment.workers`` threads; a torch op on one 192² image
    takes tens of microseconds, less than a fork-join of torch's pool, so letting each op also spread over every
    core costs CPU (measured: 1.62 against 0.98 ms of CPU per output with 2 torch threads on this 2-core machine)
    and oversubscribes the cores the worker threads already fill. The pixels do not depend on it (tested).
    """
    with _torch_threads_lock:
        state = _torch_threads_state
        if state["users"] == 0:
            state["before"] = torch.get_num_threads()
            if state["before"] != 1:
                torch.set_num_threads(1)
        state["users"] += 1
    try:
        yield
    finally:
        with _torch_threads_lock:
            state["users"] -= 1
            if state["users"] == 0 and state["before"] != 1:
                torch.set_num_threads(state["before"])


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
        with Image.open(open_image_source(path)) as image:  # the header only (a file, or a shard member)
            return image.height, image.width

    def _plan(self, row: dict[str, Any], height: int, width: int, container: str | None = None
              ) -> list[dict[str, Any]]:
        """The augment rows of one parent; ``container``: the shard (checked by the caller) that holds them."""
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
                if container is not None:
                    relative = member_path(container, f"{image_id}.{suffix}")
                else:
                    relative = f"{STAGE}/{label}/{image_id}.{suffix}"
                if container is None and label not in contained:
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
                            "exact_symmetry": recipe_is_exact_symmetry(recipe),
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
        with one_torch_thread(), ThreadPoolExecutor(self.workers) as pool:
            images = list(pool.map(_load_planes, paths))
            plans = [self._plan(row, *image.shape[1:]) for row, image in zip(rows, images)]
            todo: list[tuple[dict[str, Any], torch.Tensor]] = []
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

    def _render_and_encode(self, chunk: list[tuple[dict[str, Any], torch.Tensor]]) -> list[bytes]:
        """The encoded bytes of each ``(record, parent planes)``, rendered in one batched pass."""
        # The JSON round trip makes the parameters exactly those replay will read from the manifest.
        recipes = [json.loads(record["params"])["recipe"] if isinstance(record["params"], str)
                   else json.loads(json.dumps(record["params"]["recipe"])) for record, _ in chunk]
        # apply_recipes returns channels-last memory: the permuted view is the (H, W, 3) array, no copy.
        return [encode_variant(image.permute(1, 2, 0).numpy(), self.encode)
                for image in apply_recipes([planes for _, planes in chunk], recipes)]

    def _render_and_write(self, chunk: list[tuple[dict[str, Any], torch.Tensor]]) -> None:
        for (record, _), data in zip(chunk, self._render_and_encode(chunk)):
            write_rerenderable_bytes(self.root / record["path"], data)  # checked by safe_join in _plan
            record["sha256"] = sha256_bytes(data)

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



class AugmentShardWorker(AugmentWorker):
    """Shard tasks → augment rows: a task (``id`` = the shard's file name, ``parents`` = its parent rows as
    JSON) renders every variant of its parents and writes them as one shard; built once per worker."""

    def __init__(self, layout: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.layout = layout
        self.columns = ExportColumns(self.taxonomy)

    def __call__(self, tasks: pd.DataFrame) -> pd.DataFrame:
        with one_torch_thread():
            frames = [self._shard(str(task["id"]), json.loads(task["parents"])) for task in tasks.to_dict("records")]
        frames = [frame for frame in frames if len(frame)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def encoded_bytes(self, parents: list[dict[str, Any]]) -> int:
        """Bytes the variants of ``parents`` take once encoded (sizes the shards; nothing is written)."""
        records = self._plan_all(parents, f"{SHARDS_DIR}/sizing.{self.layout}")
        with one_torch_thread():
            return sum(len(data) for _, data, _ in self._render_group((parents, records)))

    def _plan_all(self, parents: list[dict[str, Any]], container: str) -> list[list[dict[str, Any]]]:
        """The augment rows of each parent, from its size in the file header (the rows are known before any
        pixel is decoded, so a complete shard is recognised without rendering)."""
        with ThreadPoolExecutor(self.workers) as pool:
            sizes = list(pool.map(self._image_size, [self._resolve(p["path"]) for p in parents]))
        return [self._plan(parent, height, width, container=container)
                for parent, (height, width) in zip(parents, sizes)]

    def _render_group(self, group: tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]
                      ) -> list[tuple[dict[str, Any], bytes, str]]:
        """Decode a group of parents and render their rows (chunks of one preset batch best); returns
        ``(record, encoded bytes, their sha256)`` in shard order: parent by parent, each parent's rows by id.
        The hash is taken here, in the rendering thread (hashlib releases the GIL), not by the writer."""
        parents, records = group
        todo = []
        for parent, rows in zip(parents, records):
            if rows:
                planes = _load_planes(self._resolve(parent["path"]))  # once per parent, shared by its rows
                todo += [(record, planes) for record in rows]
        todo.sort(key=lambda item: item[0]["operation"])
        encoded: dict[str, tuple[bytes, str]] = {}
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for (record, _), data in zip(chunk, self._render_and_encode(chunk)):
                encoded[record["id"]] = (data, sha256_bytes(data))
        return [(record, *encoded[record["id"]]) for rows in records for record in sorted(rows, key=_by_id)]

    def _shard(self, name: str, parents: list[dict[str, Any]]) -> pd.DataFrame:
        relative = f"{SHARDS_DIR}/{name}"
        container = safe_join(self.root, relative)  # the one output path of this task
        planned = self._plan_all(parents, relative)
        records = [record for rows in planned for record in rows]
        if not records:  # every preset unsafe for these classes, or k = 0: no shard at all
            container.unlink(missing_ok=True)
            return pd.DataFrame()
        parent_sha = {str(p["id"]): str(p.get("sha256") or "") for p in parents}
        for record in records:  # the JSON text the manifest will hold, once: the plan key is made of it
            record["params"] = json.dumps(record["params"], sort_keys=True)
        plan = shard_plan_key(self.layout, self.columns,
                              [(r["id"], r["params"], parent_sha[r["parent_ids"][0]]) for r in records])
        kept = complete_shard(container, plan)
        if kept is None:
            # Groups of parents go to the threads; this thread writes each finished group (pyarrow and the
            # tar writer release the GIL) while the threads render the next ones.
            groups = [(parents[start:start + _SHARD_GROUP_PARENTS], planned[start:start + _SHARD_GROUP_PARENTS])
                      for start in range(0, len(parents), _SHARD_GROUP_PARENTS)]
            with ThreadPoolExecutor(self.workers) as pool, \
                    ShardWriter(container, self.layout, self.columns, plan) as writer:  # type: ignore[arg-type]
                for rendered in pool.map(self._render_group, groups):
                    rows = []
                    for record, data, digest in rendered:
                        record["sha256"] = digest
                        rows.append(ShardRow(split_member(record["path"])[1], data, record))  # type: ignore[index]
                    writer.add(rows)
        else:
            for record in records:
                record["sha256"] = kept[split_member(record["path"])[1]]  # type: ignore[index]
        return _as_frame(records)


def _load_planes(path: Path) -> torch.Tensor:
    """A parent image as the contiguous uint8 ``(3, H, W)`` tensor :func:`apply_recipes` takes. Made once per
    parent and shared by its variants: each variant's float copy then reads memory in order (~3x cheaper than
    from the ``(H, W, 3)`` array's permuted view)."""
    return torch.from_numpy(load_rgb(path)).permute(2, 0, 1).contiguous()


def _by_id(record: dict[str, Any]) -> str:
    return str(record["id"])


def shard_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order of rows in an augment shard: by parent id (the order the stage renders parents in), then by id."""
    return sorted(rows, key=lambda r: (Manifest.parents(r)[0] if isinstance(r["parent_ids"], str)
                                       else r["parent_ids"][0], str(r["id"])))


def shard_plan_key(layout: str, columns: ExportColumns, rows: list[tuple[str, str, str]]) -> str:
    """What an augment shard is made from: ``(row id, params JSON, parent sha256)`` of each of its rows, in id
    order, the layout and the class names. A shard recording another key is rendered again."""
    return plan_key([SHARD_FORMAT_VERSION, layout, columns.fine_classes, columns.macro_classes, sorted(rows)])


def _as_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows with JSON text in ``params``/``parent_ids``, so any executor can move or checkpoint them."""
    for record in records:
        if not isinstance(record["params"], str):
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
    if config.layout != "files" and config.mode == "lazy":
        raise ConfigError(f"augment.layout: {config.layout} shards hold rendered images and mode lazy renders "
                          f"none; use mode materialised, or layout files")
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
    if config.layout == "files":
        new_rows = map_batches(AugmentWorker, parents.frame, worker_kwargs=worker_kwargs, executor=executor,
                               description=f"augment: {config.mode}", checkpoint_dir=out)
    else:
        new_rows = _augment_to_shards(parents.frame, out, config, worker_kwargs, executor or ExecutorConfig())
    manifest = source.append(new_rows.to_dict("records") if len(new_rows) else [])
    derived.with_manifest(manifest).write()
    return manifest


def _augment_to_shards(parents: pd.DataFrame, out: Path, config: AugmentConfig, worker_kwargs: dict[str, Any],
                       executor: ExecutorConfig) -> pd.DataFrame:
    """Materialise into shards: one executor task per shard of consecutive parents (sorted by id).

    The static shard (``executor.shard``) is chosen here, before grouping, so the tasks and their names are
    those of that shard alone; the shard names carry it, so the folders of several static shards merge.
    """
    static = parse_shard(executor.shard)
    rows = select_shard(parents, static).sort_values("id", kind="stable").reset_index(drop=True)
    prefix = STAGE if static is None or static.is_everything else f"{STAGE}-shard{static.index}of{static.count}"
    kwargs = {**worker_kwargs, "layout": config.layout}
    records = Manifest(rows, out).records()
    per_shard = _parents_per_shard(records, kwargs, config.shard_size_mb * 1e6)
    groups = [records[start:start + per_shard] for start in range(0, len(records), per_shard)]
    names = [shard_file_name(prefix, index, len(groups), config.layout) for index in range(len(groups))]
    tasks = pd.DataFrame({"id": names, "parents": [json.dumps(group, sort_keys=True, default=str) for group in groups]})
    new_rows = map_batches(AugmentShardWorker, tasks, worker_kwargs=kwargs, description=f"augment: {config.layout}",
                           executor=executor.model_copy(update={"batch_size": 1, "shard": None}), checkpoint_dir=out)
    remove_stale_shards(out / SHARDS_DIR, prefix, names)
    return new_rows


def _parents_per_shard(parents: list[dict[str, Any]], worker_kwargs: dict[str, Any], target_bytes: float) -> int:
    """Parents whose variants fill a shard of ``target_bytes``, from the encoded size of the first parents'
    variants (a deterministic estimate: the same inputs and config give the same shards)."""
    if not parents:
        return 1
    sample = parents[:_SHARD_SAMPLE_PARENTS]
    per_parent = AugmentShardWorker(**worker_kwargs).encoded_bytes(sample) / len(sample)
    return len(parents) if per_parent <= 0 else max(1, int(target_bytes // per_parent))


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
    with one_torch_thread(), ThreadPoolExecutor(workers) as pool:
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
    Rows in a shard are replayed shard by shard: a shard whose rows all reproduce is written again only when
    it is missing or incomplete (its bytes would be the same). The manifest is read through
    :meth:`Dataset.open` (containment check) and every write goes through :func:`safe_join`."""
    opened = Dataset.open(dataset)
    manifest = opened.manifest
    rows = [r for r in manifest.records() if r["stage"] == STAGE and manifest.params(r).get("materialised", True)]
    report = ReplayReport()
    lookup = _parent_lookup(manifest)
    in_shards: dict[str, list[dict[str, Any]]] = {}
    files = []
    for row in rows:
        member = split_member(row["path"])
        if member is None:
            files.append(row)
        else:
            in_shards.setdefault(str(member[0]), []).append(row)
    for start in range(0, len(files), batch_size * 4):
        chunk = files[start:start + batch_size * 4]
        arrays = render_rows(manifest, chunk, lookup, batch_size, workers)
        for row, array in zip(chunk, arrays):
            data = encode_variant(array, manifest.params(row)["encode"])
            report.rendered += 1
            if sha256_bytes(data) != row["sha256"]:
                report.mismatched.append(row["id"])
            elif not check_only:
                write_rerenderable_bytes(safe_join(manifest.root, row["path"]), data)
    columns = ExportColumns(opened.taxonomy)
    replayed = {r["id"] for r in rows}
    others = {str(member[0]) for row in manifest.records() if row["id"] not in replayed
              for member in [split_member(row["path"])] if member is not None}
    for container, shard_rows in sorted(in_shards.items()):
        # A shard that also holds other rows (a combined set's shard) is checked, never rebuilt from these alone.
        rebuild = not check_only and container not in others
        _replay_shard(manifest, container, shard_rows, lookup, columns, report, rebuild, batch_size, workers)
    return report


def _replay_shard(manifest: Manifest, container: str, rows: list[dict[str, Any]], lookup: dict[str, dict[str, Any]],
                  columns: ExportColumns, report: ReplayReport, rebuild: bool, batch_size: int,
                  workers: int) -> None:
    """Render the rows of one augment shard and compare; with ``rebuild``, write the shard again when it is
    missing or incomplete and every row reproduced."""
    shard_rows, mismatched = [], False
    for start in range(0, len(rows), batch_size * 4):
        chunk = rows[start:start + batch_size * 4]
        for row, array in zip(chunk, render_rows(manifest, chunk, lookup, batch_size, workers)):
            data = encode_variant(array, manifest.params(row)["encode"])
            report.rendered += 1
            if sha256_bytes(data) != row["sha256"]:
                report.mismatched.append(row["id"])
                mismatched = True
            shard_rows.append(ShardRow(split_member(row["path"])[1], data, row))  # type: ignore[index]
    if not rebuild or mismatched:
        return
    layout = "webdataset" if container.endswith(".tar") else "parquet"
    plan = shard_plan_key(layout, columns, [
        (r["id"], r["params"], str(lookup[Manifest.parents(r)[0]].get("sha256") or "")) for r in rows])
    target = safe_join(manifest.root, container)
    if complete_shard(target, plan) is None:
        by_id = {row.row["id"]: row for row in shard_rows}
        ordered = [by_id[r["id"]] for r in shard_order(rows)]
        write_shard(target, ordered, layout, columns, plan)  # type: ignore[arg-type]


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
        if any((manifest.root / split / METADATA_NAME).is_file() for split in SPLITS):
            # an ImageFolder tree (flare combine): its metadata files now list the exported images too
            write_imagefolder_metadata(manifest.root, manifest, Dataset.open(manifest.root).taxonomy)
    return manifest
