"""The provenance table carried from stage to stage: one row per image, one Parquet file per dataset version.

Every row says what an image is (``label``, ``macro_label``, ``split``), where it came from (``origin_id``,
``parent_ids``) and exactly how it was made (``stage``, ``operation``, ``params`` as JSON, ``seed``, ``backend``,
``model_id``, ``model_hash``). Paths are relative to the dataset folder unless absolute (ingest may reference
source files in place). Rows are written sorted by ``id`` so that the same content always gives the same file,
whatever order or worker produced it.

Containment (:func:`check_rows`, run by :meth:`flare.core.dataset.Dataset.open` and so by every stage that
reads a dataset, and by ``check-leakage``, ``merge-manifests``, ``augment replay/export``): no path taken from a
manifest ever leaves its root. A row is refused with one :class:`ManifestError` line naming the row and the
column when

- its ``id`` is not a safe file stem (:data:`ID_PATTERN`: no ``/`` or ``\\``, no control characters, no
  leading ``.``, 1–200 characters; ingest keeps the user's file names, spaces included, so it is no stricter);
- its ``label`` is not a safe folder name (``LABEL_PATTERN``) or, when the dataset has a taxonomy, not one of
  its classes; its ``split`` is not one of ``train``, ``val``, ``test``;
- its ``path`` or ``truth_path`` leaves the dataset folder. A *relative* path must stay inside the root
  (checked lexically: no ``..`` out of it). An *absolute* path is accepted only (a) on an ``ingest`` row — the
  ``reference`` storage points at the user's source files in place — or (b) when it lies inside another FLARE
  dataset folder (an ancestor folder holding ``manifest.parquet``), which is what :meth:`Manifest.rebase`
  writes for the rows a stage inherits from its input. Anything else (``/etc/passwd``, ``../x.png``) is refused.

Files read through an accepted absolute path (or through a link inside the root) are verified where their
bytes are used: ``combine`` checks each copied file's sha256 against the row, and ``check-leakage`` re-hashes
every file by default. Writers never trust a row either: every output path built from manifest data goes
through :func:`flare.core.files.safe_join`. Construction (:meth:`Manifest.from_records`) and
:meth:`Manifest.read` stay permissive so that tools and tests can build and inspect any table.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flare.core.errors import ManifestError
from flare.core.files import atomic_output

__all__ = ["Manifest", "check_rows", "cell_text", "ID_PATTERN", "MANIFEST_NAME", "SCHEMA_VERSION", "COLUMNS", "SPLITS", "SOURCE_STAGES", "TRAIN_ONLY_STAGES", "derived_id",
           "base_images"]

MANIFEST_NAME = "manifest.parquet"
SCHEMA_VERSION = "1"
SPLITS = ("train", "val", "test")
# Stages whose rows are real observations.
SOURCE_STAGES = ("ingest", "simulate", "observe")
# Stages that make new training examples; their rows may only ever be in train. (1:1 transforms such as
# ``upscale`` keep their parent's split: a test image is upscaled too, and stays a test image.)
TRAIN_ONLY_STAGES = ("augment", "generate")

# column → (pandas dtype, default)
COLUMNS: dict[str, tuple[str, Any]] = {
    "id": ("string", None),
    "path": ("string", None),
    "sha256": ("string", ""),
    "label": ("string", None),
    "macro_label": ("string", ""),
    "origin_id": ("string", None),
    "split": ("string", "train"),
    "stage": ("string", None),
    "operation": ("string", ""),
    "params": ("string", "{}"),
    "seed": ("Int64", None),
    "backend": ("string", ""),
    "model_id": ("string", ""),
    "model_hash": ("string", ""),
    "parent_ids": ("string", "[]"),
    "truth_path": ("string", ""),
}
# A row id becomes a file stem in every stage's output: one path component, never hidden, never too long.
ID_PATTERN = re.compile(r"^(?!\.)[^/\\\x00-\x1f\x7f]{1,200}$")
ID_RULE = "is not a safe file name (no '/', '\\', control characters or leading '.', at most 200 characters)"
REQUIRED = [name for name, (_, default) in COLUMNS.items() if default is None and name != "seed"]


def base_images(manifest: "Manifest") -> "Manifest":
    """The images a stage builds on: the upscaled ones when stage 1 has run, else the source observations."""
    upscaled = manifest.filter(stage="upscale")
    if len(upscaled):
        return upscaled
    return manifest.filter(stage=list(SOURCE_STAGES))


def derived_id(parent_id: str, stage: str, variant: int | str) -> str:
    """Id of the ``variant``-th image a stage derives from ``parent_id`` (stable across runs and workers)."""
    return f"{parent_id}__{stage}{variant}"


def _normalise_record(record: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (_, default) in COLUMNS.items():
        value = record.get(name, default)
        if value is None and name in REQUIRED:
            raise ManifestError(f"manifest: record {record.get('id')!r} lacks required column {name!r}")
        if name == "params" and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True, default=_json_default)
        elif name == "parent_ids" and not isinstance(value, str):
            value = json.dumps(list(value))
        out[name] = value
    extra = set(record) - set(COLUMNS)
    if extra:
        raise ManifestError(f"manifest: unknown columns {sorted(extra)}; allowed: {', '.join(COLUMNS)}")
    return out


def _json_default(value: Any) -> Any:
    # NumPy scalars and arrays appear in sampled parameters; store them as plain JSON.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass
class Manifest:
    """A provenance table plus the folder its relative paths are resolved against."""

    frame: pd.DataFrame
    root: Path

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, root: str | Path) -> "Manifest":
        return cls.from_records([], root)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], root: str | Path) -> "Manifest":
        rows = [_normalise_record(r) for r in records]
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        return cls(_typed(frame), Path(root))

    @classmethod
    def read(cls, root_or_file: str | Path) -> "Manifest":
        path = Path(root_or_file)
        file = path / MANIFEST_NAME if path.is_dir() else path
        if not file.is_file():
            raise ManifestError(f"manifest: {str(file)!r} does not exist (run an earlier stage first)")
        try:
            table = pq.read_table(file)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise ManifestError(f"manifest: {str(file)!r} is not a readable Parquet file ({exc})") from None
        version = (table.schema.metadata or {}).get(b"flare.schema_version", b"?").decode()
        if version != SCHEMA_VERSION:
            raise ManifestError(f"manifest: {str(file)!r} has schema version {version}, expected {SCHEMA_VERSION}")
        frame = table.to_pandas()
        for name in COLUMNS:
            if name not in frame:
                frame[name] = COLUMNS[name][1]
        return cls(_typed(frame[list(COLUMNS)]), file.parent)

    @staticmethod
    def exists(root: str | Path) -> bool:
        return (Path(root) / MANIFEST_NAME).is_file()

    # ------------------------------------------------------------------ writing
    def write(self, root: str | Path | None = None) -> Path:
        """Write atomically (temp + rename), rows sorted by id; returns the file path."""
        root = Path(root) if root is not None else self.root
        frame = self.frame.sort_values("id", kind="stable").reset_index(drop=True)
        if frame["id"].duplicated().any():
            dupes = frame.loc[frame["id"].duplicated(), "id"].tolist()[:5]
            raise ManifestError(f"manifest: duplicate ids {dupes}")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({b"flare.schema_version": SCHEMA_VERSION.encode()})
        target = root / MANIFEST_NAME
        with atomic_output(target) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return target

    # ------------------------------------------------------------------ editing (returns new manifests)
    def append(self, records: Iterable[Mapping[str, Any]]) -> "Manifest":
        """Add rows; a row whose id exists already replaces it (so re-running a step is idempotent)."""
        new = Manifest.from_records(records, self.root).frame
        kept = self.frame[~self.frame["id"].isin(new["id"])]
        return Manifest(_typed(pd.concat([kept, new], ignore_index=True)), self.root)

    def concat(self, other: "Manifest") -> "Manifest":
        return self.append(other.records())

    def filter(self, **equals: Any) -> "Manifest":
        """Rows whose columns equal the given values (a tuple or list means "one of")."""
        mask = pd.Series(True, index=self.frame.index)
        for column, value in equals.items():
            values = value if isinstance(value, (list, tuple, set)) else [value]
            mask &= self.frame[column].isin(list(values))
        return Manifest(self.frame[mask].reset_index(drop=True), self.root)

    def rebase(self, new_root: str | Path) -> "Manifest":
        """Same rows, with relative paths rewritten to stay valid from ``new_root``."""
        new_root = Path(new_root)
        frame = self.frame.copy()
        for column in ("path", "truth_path"):
            frame[column] = [self._rebase_one(p, new_root) for p in frame[column]]
        return Manifest(frame, new_root)

    def _rebase_one(self, value: Any, new_root: Path) -> Any:
        if value is None or pd.isna(value) or value == "" or Path(value).is_absolute():
            return value
        absolute = (self.root / value).resolve()
        try:
            return str(absolute.relative_to(new_root.resolve()))
        except ValueError:
            return str(absolute)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.frame)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for row in self.frame.to_dict("records"):
            out.append({k: (None if (not isinstance(v, str) and pd.isna(v)) else v) for k, v in row.items()})
        return out

    def resolve(self, path: str) -> Path:
        """Absolute path of a manifest ``path`` value."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def params(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return json.loads(row["params"] or "{}")

    @staticmethod
    def parents(row: Mapping[str, Any]) -> list[str]:
        return json.loads(row["parent_ids"] or "[]")

    def ids(self) -> list[str]:
        return self.frame["id"].tolist()

    def validate(self, taxonomy: Any = None) -> "Manifest":
        """Refuse any row that breaks the containment rule (see :func:`check_rows`); returns ``self``."""
        check_rows(self, taxonomy)
        return self


def cell_text(value: Any) -> str:
    """A manifest or table cell as ``str``: missing values (None, NaN, pandas NA) become ""."""
    return "" if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else str(value)


def check_rows(manifest: Manifest, taxonomy: Any = None) -> None:
    """Raise a one-line :class:`ManifestError` for the first row whose id, label, split, path or truth_path
    breaks the containment rule of this module's docstring. ``taxonomy`` (a :class:`Taxonomy`) limits labels
    to its classes."""
    from flare.core.taxonomy import LABEL_PATTERN

    frame = manifest.frame
    root = str(manifest.root)
    root_abs = os.path.abspath(root)
    classes = set(taxonomy.fine_to_macro) if taxonomy is not None else None
    in_dataset: dict[str, bool] = {}

    def refuse(row_id: str, what: str) -> None:
        raise ManifestError(f"manifest: row {row_id!r} of {root!r}: {what}")

    def inside_a_dataset(folder: str) -> bool:
        if folder not in in_dataset:
            parent = os.path.dirname(folder)
            in_dataset[folder] = (os.path.isfile(os.path.join(folder, MANIFEST_NAME))
                                  or (parent != folder and inside_a_dataset(parent)))
        return in_dataset[folder]

    columns = [frame[name].tolist() for name in ("id", "label", "split", "stage", "path", "truth_path")]
    for row_id, label, split, stage, path, truth in zip(*columns):
        row_id, label, split = cell_text(row_id), cell_text(label), cell_text(split)
        if not ID_PATTERN.match(row_id):
            refuse(row_id, f"id {row_id!r} {ID_RULE}")
        if classes is not None and label not in classes:
            refuse(row_id, f"label {label!r} is not one of {', '.join(sorted(classes))}")
        if not LABEL_PATTERN.match(label):
            refuse(row_id, f"label {label!r} is not a safe class name (letters, digits, _ . + - space)")
        if split not in SPLITS:
            refuse(row_id, f"split {split!r} is not one of {', '.join(SPLITS)}")
        for column, value in (("path", path), ("truth_path", truth)):
            value = cell_text(value)
            if not value:
                continue
            if os.path.isabs(value):
                if cell_text(stage) == "ingest" or inside_a_dataset(os.path.dirname(os.path.normpath(value))):
                    continue
            else:
                joined = os.path.normpath(os.path.join(root_abs, value))
                if joined.startswith(root_abs.rstrip(os.sep) + os.sep) and "\x00" not in value:
                    continue
            refuse(row_id, f"{column} {value!r} leaves the dataset folder")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({name: dtype for name, (dtype, _) in COLUMNS.items()})
