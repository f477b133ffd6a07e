"""Per-batch checkpoints, so that a stage killed mid-way resumes with at most the in-flight batch lost.

Each finished batch is written as one Parquet file under ``OUT/.flare-parts/<run key>/`` (atomically: temp +
rename), holding the rows the worker returned and, in its metadata, the ids of the input rows it covered.
On a re-run those input rows are not sent to the workers again. The run key hashes the worker class and its
kwargs, so a changed configuration never reuses old parts. The folder is removed once the stage has all its
rows. A part whose output files have gone missing or changed (SHA-256) is ignored: its rows are redone (for
an image in a shard, the sha256 the shard records is compared).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flare.core.files import TEMP_PREFIX, atomic_output, output_is_valid, remove_stale_temp_files
from flare.core.image_shards import recorded_sha256, split_member

__all__ = ["PARTS_DIR", "PartStore", "run_key", "row_fingerprints", "remove_stale_temp_files"]

PARTS_DIR = ".flare-parts"
_INPUT_IDS_KEY = b"flare.input_ids"


def run_key(worker_class: type, worker_kwargs: dict[str, Any]) -> str:
    """A short hash of what the run computes (worker class + kwargs); equal keys may share checkpoints."""
    text = f"{worker_class.__module__}.{worker_class.__qualname__}|" + repr(sorted(
        (str(k), _describe(v)) for k, v in worker_kwargs.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe(value: Any) -> str:
    if hasattr(value, "model_dump_json"):  # pydantic sections
        return value.model_dump_json()
    return repr(value)


class PartStore:
    """The finished batches of one stage run, one Parquet file each."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @classmethod
    def for_run(cls, checkpoint_dir: str | Path, worker_class: type, worker_kwargs: dict[str, Any]) -> "PartStore":
        return cls(Path(checkpoint_dir) / PARTS_DIR / run_key(worker_class, worker_kwargs))

    def write(self, batch: pd.DataFrame, output: pd.DataFrame) -> None:
        """Record that the input rows ``batch`` are done and produced ``output`` (atomic; named by the ids)."""
        fingerprints = row_fingerprints(batch)
        name = hashlib.sha256("\x1f".join(sorted(fingerprints)).encode()).hexdigest()[:24] + ".parquet"
        table = pa.Table.from_pandas(output.reset_index(drop=True), preserve_index=False)
        metadata = dict(table.schema.metadata or {})
        metadata[_INPUT_IDS_KEY] = json.dumps(fingerprints, sort_keys=True).encode()
        table = table.replace_schema_metadata(metadata)
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.folder / name) as tmp:
            pq.write_table(table, tmp)

    def load(self, inputs: pd.DataFrame, root: str | Path | None = None) -> tuple[set[str], list[pd.DataFrame]]:
        """The ids of ``inputs`` already done and their outputs.

        A part counts only when each input row it covers is among ``inputs`` with the same content (so a
        changed input, or another shard, is redone rather than reused) and, with ``root`` to resolve relative
        paths, when its output files are still there and unchanged.
        """
        wanted = row_fingerprints(inputs)
        done: set[str] = set()
        outputs: list[pd.DataFrame] = []
        if not self.folder.is_dir():
            return done, outputs
        for file in sorted(self.folder.glob("*.parquet")):
            if file.name.startswith(TEMP_PREFIX):
                continue
            try:
                table = pq.read_table(file)
                covered = json.loads((table.schema.metadata or {})[_INPUT_IDS_KEY])
                frame = table.to_pandas()
            except Exception:  # a torn or foreign file: ignore it, its rows are simply redone
                continue
            if not isinstance(covered, dict) or any(wanted.get(k) != v for k, v in covered.items()):
                continue
            if root is not None and not _files_present(frame, Path(root)):
                continue
            done.update(covered)
            outputs.append(frame)
        return done, outputs

    def clear(self) -> None:
        """Remove this run's parts (and the parts folder when nothing else is left in it)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass


def row_fingerprints(rows: pd.DataFrame) -> dict[str, str]:
    """``{id: hash of the row's values}``: what a checkpoint was computed from."""
    out = {}
    for record in rows.to_dict("records"):
        text = json.dumps(record, sort_keys=True, default=str)
        out[str(record["id"])] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def _files_present(frame: pd.DataFrame, root: Path) -> bool:
    """Every output file the part names exists and, where the row carries one, matches its ``sha256``."""
    if "path" not in frame or not len(frame):
        return True
    digests = frame["sha256"] if "sha256" in frame else [None] * len(frame)
    for value, digest in zip(frame["path"], digests):
        if isinstance(value, str) and value:
            path = Path(value)
            path = path if path.is_absolute() else root / path
            digest = digest if isinstance(digest, str) else None
            if split_member(path) is not None and not path.is_file():
                # a shard member: the shard's index records its sha256 (reading it does not read the image)
                if recorded_sha256(path) is None or (digest and recorded_sha256(path) != digest):
                    return False
            elif not output_is_valid(path, digest, decode=False):
                return False
    return True
