"""Write chosen rows as an ImageFolder tree (``<split>/<label>/<id>.<ext>``) with copied files.

The tree loads with ``torchvision.datasets.ImageFolder(out / "train")`` and with Hugging Face
``datasets.load_dataset("imagefolder", data_dir=out)`` (split folders train/val/test). Rows without a file
(lazy augmentation recipes) get their planned path and no copy; ``flare combine --export`` renders them.
A source row may live in a shard (``shards/<shard>/<id>.png``): its bytes are read from the shard. The stage
then writes ``<split>/metadata.parquet`` (:func:`flare.core.hf_columns.write_imagefolder_metadata`), so
``load_dataset("imagefolder")`` also gives each image's provenance columns.

Every target goes through :func:`safe_join` (a row's split, label or id cannot lead out of ``out``), and every
copied file's bytes are checked against the row's recorded ``sha256``: a file that changed, or a path that
points at some other file, is refused with one line naming the row and nothing is written for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from flare.core.errors import ManifestError
from flare.core.files import safe_join, sha256_bytes
from flare.core.image_shards import image_exists, read_image_bytes
from flare.core.manifest import Manifest

__all__ = ["imagefolder_path", "write_imagefolder", "suffix_of"]


def suffix_of(row: dict[str, Any]) -> str:
    """The image suffix of a row's file (or shard member), lower case; ``.png`` when it has none."""
    return Path(str(row["path"])).suffix.lower() or ".png"


def imagefolder_path(row: dict[str, Any]) -> str:
    return f"{row['split']}/{row['label']}/{row['id']}{suffix_of(row)}"


def _absolute(manifest: Manifest, value: Any) -> str:
    if value is None or value == "":
        return ""
    return str(manifest.resolve(str(value)).resolve())


def write_imagefolder(out: str | Path, chosen: Sequence[tuple[dict[str, Any], Manifest, bool]],
                      workers: int = 4) -> list[dict[str, Any]]:
    """Copy each ``(row, its manifest, has_file)`` into the tree; returns the rows with their new paths."""
    out = Path(out)
    records, copies = [], []
    for row, manifest, has_file in chosen:
        relative = imagefolder_path(row)
        target = safe_join(out, relative)
        if has_file:
            source = manifest.resolve(row["path"])
            if not image_exists(source):
                raise ManifestError(f"combine: image {str(source)!r} of row {row['id']!r} does not exist")
            copies.append((source, target, str(row.get("sha256") or ""), str(row["id"])))
        truth = _absolute(manifest, row.get("truth_path"))
        records.append({**row, "path": relative, "truth_path": truth})

    def copy(item: tuple[Path, Path, str, str]) -> None:
        source, target, digest, row_id = item
        data = read_image_bytes(source)
        if digest and sha256_bytes(data) != digest:
            raise ManifestError(f"combine: image {str(source)!r} of row {row_id!r} does not match its recorded "
                                f"sha256 (the file changed since the manifest was written)")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".flare-tmp-{target.name}")
        tmp.write_bytes(data)
        tmp.replace(target)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(copy, copies))
    return records
