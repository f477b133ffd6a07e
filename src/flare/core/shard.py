"""Static sharding for schedulers without Ray (SLURM arrays, several machines): ``--shard i/N``, then merge.

Shard ``i`` of ``N`` takes the rows whose *origin* hashes to ``i``, never rows by position, so a shard's
content does not change when rows are added, removed or reordered, and every image derived from one
origin lands in the same shard. Each shard writes its own dataset folder; :func:`merge_manifests` joins them
into one, refusing duplicate ids whose rows disagree (identical rows, e.g. the shared input rows, merge).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import pandas as pd

from flare.core.errors import ConfigError, ManifestError
from flare.core.files import atomic_output, safe_join, sha256_file
from flare.core.image_shards import image_exists, image_sha256, split_member
from flare.core.manifest import COLUMNS, Manifest

__all__ = ["Shard", "parse_shard", "shard_index", "select_shard", "shard_key_column", "merge_manifests"]

_SHARD_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``; ``Shard(0, 1)`` is everything."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"shard: count must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(f"shard: index must be in 0..{self.count - 1}, got {self.index}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def is_everything(self) -> bool:
        return self.count == 1


def parse_shard(text: "str | Shard | None") -> Shard | None:
    """``"1/4"`` → ``Shard(1, 4)``; ``None`` or ``""`` → ``None`` (no sharding). Bad text is a one-line error."""
    if text is None or isinstance(text, Shard):
        return text
    if not str(text).strip():
        return None
    match = _SHARD_PATTERN.match(str(text))
    if not match:
        raise ConfigError(f"--shard: {text!r} is not of the form i/N (e.g. 0/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ConfigError(f"--shard: N must be at least 1, got {text!r}")
    if index >= count:
        raise ConfigError(f"--shard: i must be in 0..{count - 1}, got {text!r}")
    return Shard(index, count)


def shard_index(key: str, count: int) -> int:
    """The shard of ``key``: SHA-256 of the key, modulo ``count`` (stable across Python runs and machines)."""
    digest = hashlib.sha256(str(key).encode()).digest()
    return int.from_bytes(digest[:8], "little") % count


def shard_key_column(rows: pd.DataFrame) -> str:
    """``origin_id`` when present (an origin's images stay together), else ``id``."""
    for column in ("origin_id", "id"):
        if column in rows.columns:
            return column
    raise ConfigError("shard: rows need an 'origin_id' or 'id' column to be sharded")


def select_shard(rows: pd.DataFrame, shard: "Shard | str | None", key_column: str | None = None) -> pd.DataFrame:
    """The rows of ``shard`` (all rows when ``shard`` is ``None`` or ``0/1``), in their original order."""
    shard = parse_shard(shard)
    if shard is None or shard.is_everything or not len(rows):
        return rows
    column = key_column or shard_key_column(rows)
    keys = rows[column].astype("string").fillna(rows["id"].astype("string") if "id" in rows else "")
    mask = [shard_index(key, shard.count) == shard.index for key in keys]
    return rows[mask].reset_index(drop=True)


def merge_manifests(inputs: Iterable[str | Path], out: str | Path,
                    files: Literal["link", "copy", "reference"] = "link") -> Manifest:
    """Join the dataset folders written by several shards into ``out``; returns the merged manifest.

    Rows with the same id must agree on every column except ``path`` (which is compared by the file's
    content); otherwise the merge stops with a one-line :class:`ManifestError`. Files that live inside a
    shard folder are hard-linked (``files="link"``, falling back to a copy across file systems) or copied
    into ``out`` at the same relative path, so a merge of shards equals an unsharded run byte for byte;
    ``files="reference"`` keeps them where they are and rewrites the paths instead. An image inside a Parquet or
WebDataset shard (``shards/<shard>/<member>``) is placed with its whole shard file.

    Every input is held to the containment rule of :mod:`flare.core.manifest` (:func:`check_rows`) before
    anything is written, and every linked or copied file lands via :func:`safe_join` under ``out``.
    """
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ManifestError("merge: give at least one input dataset folder")
    manifests = [Manifest.read(folder).validate() for folder in inputs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged: dict[str, dict] = {}
    origin_of: dict[str, Path] = {}
    for folder, manifest in zip(inputs, manifests):
        root = manifest.root.resolve()
        for record in manifest.records():
            record = dict(record)
            for column in ("path", "truth_path"):
                record[column] = _place(record[column], root, out, files, manifest, column, record["id"])
            previous = merged.get(record["id"])
            if previous is not None:
                _check_same(previous, record, origin_of[record["id"]], folder, out)
                continue
            merged[record["id"]] = record
            origin_of[record["id"]] = folder
    _merge_taxonomy(inputs, out)
    result = Manifest.from_records(merged.values(), out)
    result.write()
    return result


def _merge_taxonomy(inputs: list[Path], out: Path) -> None:
    """Carry ``taxonomy.yaml`` over; the shards of one run all hold the same one."""
    files = [folder / "taxonomy.yaml" for folder in inputs if (folder / "taxonomy.yaml").is_file()]
    if not files:
        return
    texts = {file.read_bytes() for file in files}
    if len(texts) > 1:
        raise ManifestError(f"merge: the inputs hold different taxonomy.yaml files ({', '.join(map(str, files))})")
    target = out / "taxonomy.yaml"
    if not target.is_file() or target.read_bytes() != files[0].read_bytes():
        with atomic_output(target) as tmp:
            shutil.copyfile(files[0], tmp)


def _place(value, root: Path, out: Path, files: str, manifest: Manifest, column: str, row_id: str):
    """Where the merged manifest finds a file: linked/copied under ``out`` or referenced in place."""
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return value
    member = split_member(value)
    if member is not None and not manifest.resolve(value).is_file():
        # an image in a Parquet/WebDataset shard: the shard file is placed, the member name kept
        container = _place(str(member[0]), root, out, files, manifest, column, row_id)
        return f"{container}/{member[1]}"
    source = manifest.resolve(value).resolve()
    inside = root in source.parents
    if files == "reference" or not inside:
        return _relative_or_absolute(source, out)
    relative = source.relative_to(root)
    target = safe_join(out, relative)
    if target.resolve() == source:
        return str(relative)
    if not source.is_file():
        raise ManifestError(f"merge: {column} of {row_id!r} points at missing file {str(source)!r}")
    if target.exists():
        if sha256_file(target) != sha256_file(source):
            raise ManifestError(f"merge: {str(target)!r} exists with different content than {str(source)!r}")
        return str(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as tmp:
        tmp.unlink()
        try:
            if files == "copy":
                raise OSError("copy requested")
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    return str(relative)


def _relative_or_absolute(source: Path, out: Path) -> str:
    """As :meth:`Manifest.rebase` writes it: relative when under ``out``, else absolute."""
    try:
        return str(source.relative_to(out.resolve()))
    except ValueError:
        return str(source)


def _check_same(first: dict, second: dict, first_folder: Path, second_folder: Path, out: Path) -> None:
    for column in COLUMNS:
        a, b = first.get(column), second.get(column)
        if column in ("path", "truth_path") and a and b and a != b:
            same = _content_equal(out / a, out / b)
        else:
            same = (a == b) or (_missing(a) and _missing(b))
        if not same:
            raise ManifestError(f"merge: id {first['id']!r} differs in column {column!r} between "
                                f"{str(first_folder)!r} and {str(second_folder)!r}")


def _content_equal(a: Path, b: Path) -> bool:
    return image_exists(a) and image_exists(b) and image_sha256(a) == image_sha256(b)


def _missing(value) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))
