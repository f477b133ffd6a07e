"""Write chosen rows as Parquet (or WebDataset tar) shards per split: ``shards/<split>-NNNNN-of-NNNNN.<ext>``.

The layout for survey-sized sets (``combine.layout: parquet``): each split's rows, sorted by id, are packed in
order into shards of about ``combine.shard_size_mb`` (a shard closes before the row that would take it past
the target; sizes are the files' sizes, or a shard member's share of its shard). Each image's bytes are copied
unchanged after the same sha256 check as the ImageFolder writer, beside the export columns of
:mod:`flare.core.hf_columns`. A row's manifest ``path`` becomes ``shards/<shard>/<id>.<ext>``, which
:func:`flare.core.io.load_rgb` reads, so every consumer of the combined folder works unchanged.

``datasets.load_dataset("parquet", data_dir=OUT / "shards")`` finds the splits train, validation (``val``)
and test from the file names; ``streaming=True`` reads one row group at a time.

Resume: the shard plan depends only on the rows, so a re-run makes the same shards; a shard already there
with the same plan key and intact images (:func:`complete_shard`) is kept, the others are written again (each
atomically), and shards of an earlier, different plan are removed. Rows without a file (lazy augmentation
recipes) are not packed: they keep their ImageFolder path, which ``flare combine --export`` fills.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from flare.combine.imagefolder import imagefolder_path, suffix_of
from flare.core.errors import ManifestError
from flare.core.files import remove_stale_temp_files, safe_join, sha256_bytes
from flare.core.hf_columns import ExportColumns
from flare.core.image_shards import (SHARDS_DIR, ShardRow, complete_shard, estimated_size, image_exists,
                                     member_path, plan_key, read_image_bytes, remove_stale_shards, shard_file_name,
                                     write_shard)
from flare.core.manifest import SPLITS, Manifest
from flare.core.taxonomy import Taxonomy

__all__ = ["write_shards", "pack_by_size", "FORMAT_VERSION"]

FORMAT_VERSION = 1  # bump when the shard content of the same rows changes


def pack_by_size(sizes: Sequence[int], target_bytes: float) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: consecutive groups whose sizes add up to at most ``target_bytes`` (a single
    item larger than the target gets a group of its own)."""
    groups, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and total + size > target_bytes:
            groups.append((start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        groups.append((start, len(sizes)))
    return groups


def write_shards(out: str | Path, chosen: Sequence[tuple[dict[str, Any], Manifest, bool]], layout: str,
                 shard_size_mb: float, taxonomy: Taxonomy, workers: int = 4) -> tuple[list[dict[str, Any]], list[str]]:
    """Pack each ``(row, its manifest, has_file)`` into shards under ``out/shards``; returns the rows with their
    new paths and the names of the shards written or kept."""
    out = Path(out)
    columns = ExportColumns(taxonomy)
    records: list[dict[str, Any]] = []
    packed: dict[str, list[tuple[dict[str, Any], Manifest, Path]]] = {split: [] for split in SPLITS}
    for row, manifest, has_file in chosen:
        if not has_file:
            records.append({**row, "path": imagefolder_path(row), "truth_path": _absolute(manifest, row)})
            continue
        source = manifest.resolve(row["path"])
        if not image_exists(source):
            raise ManifestError(f"combine: image {str(source)!r} of row {row['id']!r} does not exist")
        packed[row["split"]].append((row, manifest, source))
    names: list[str] = []
    folder = out / SHARDS_DIR
    for split in SPLITS:
        items = sorted(packed[split], key=lambda item: item[0]["id"])
        groups = pack_by_size([estimated_size(source) for _, _, source in items], shard_size_mb * 1e6)
        split_names = [shard_file_name(split, i, len(groups), layout) for i in range(len(groups))]
        for name, (start, stop) in zip(split_names, groups):
            records += _write_one(out, name, items[start:stop], layout, columns, workers)
        remove_stale_shards(folder, split, split_names)
        names += split_names
    if folder.is_dir():
        remove_stale_temp_files(folder)
    return records, names


def _absolute(manifest: Manifest, row: dict[str, Any]) -> str:
    value = row.get("truth_path")
    return "" if value is None or value == "" else str(manifest.resolve(str(value)).resolve())


def _write_one(out: Path, name: str, items: list[tuple[dict[str, Any], Manifest, Path]], layout: str,
               columns: ExportColumns, workers: int) -> list[dict[str, Any]]:
    """Write (or keep, when complete) one shard; returns its rows as the output manifest holds them."""
    relative = f"{SHARDS_DIR}/{name}"
    container = safe_join(out, relative)
    members = [f"{row['id']}{suffix_of(row)}" for row, _, _ in items]
    plan = plan_key([FORMAT_VERSION, layout, columns.fine_classes, columns.macro_classes,
                     [[member, columns.named(row)] for member, (row, _, _) in zip(members, items)]])
    kept = complete_shard(container, plan)
    if kept is None:
        def read(item: tuple[dict[str, Any], Manifest, Path]) -> bytes:
            row, _, source = item
            data = read_image_bytes(source)
            if row.get("sha256") and sha256_bytes(data) != row["sha256"]:
                raise ManifestError(f"combine: image {str(source)!r} of row {row['id']!r} does not match its "
                                    f"recorded sha256 (the file changed since the manifest was written)")
            return data

        with ThreadPoolExecutor(workers) as pool:
            blobs = list(pool.map(read, items))
        kept = {member: sha256_bytes(data) for member, data in zip(members, blobs)}
        rows = [{**row, "sha256": kept[member]} for member, (row, _, _) in zip(members, items)]
        write_shard(container, [ShardRow(m, d, r) for m, d, r in zip(members, blobs, rows)], layout, columns, plan)
    return [{**row, "path": member_path(relative, member), "sha256": kept[member],
             "truth_path": _absolute(manifest, row)} for member, (row, manifest, _) in zip(members, items)]
