"""Image shards: many encoded images in one Parquet file (or WebDataset tar), written atomically, read by row.

One file per image costs 0.3–0.9 ms of file creation each on ext4 (docs/augmentation.md), and millions of small
files are what cluster file systems handle worst; large image datasets ship as Parquet shards (Hugging Face) or
tar shards (WebDataset). A shard holds each image's encoded bytes, unchanged, plus the provenance columns of
:mod:`flare.core.hf_columns`.

**Paths.** A manifest row whose image lives in a shard has ``path = "<container>/<member>"``, for instance
``shards/train-00000-of-00004.parquet/587722…__augment_hflip_0.png``: the shard file, then the member name (the
row id plus the image suffix), as :class:`zipfile.Path` names a member of a zip. The readers here understand it
(:func:`read_image_bytes`, :func:`image_exists`, :func:`image_sha256`, and so :func:`flare.core.io.load_rgb`),
so every stage and consumer keeps calling ``load_rgb(manifest.resolve(row["path"]))``; the containment rule of
:mod:`flare.core.manifest` applies to the whole path as to any other.

**Parquet** (layout ``parquet``): column ``image`` (a struct of ``bytes`` and ``path``: Hugging Face's ``Image``
storage), then the export columns; the ``huggingface`` schema metadata names the features, so
``datasets.load_dataset("parquet", data_files=..., streaming=True)`` decodes ``image`` and gives ``label`` as a
ClassLabel, and pyarrow reads it as any table. Row groups hold :data:`ROW_GROUP_ROWS` rows, Hugging Face's
choice for image data (a streaming reader fetches ~4 MB at a time at 40 KiB an image). The image bytes are
stored uncompressed and without statistics or dictionary (PNG and JPEG are compressed already), the other
columns with zstd.

**WebDataset** (layout ``webdataset``): a POSIX tar whose samples are ``<key>.<ext>`` (the image),
``<key>.json`` (the columns, labels as names) and ``<key>.cls`` (the fine label's index). The key is the row id
with ``%`` and ``.`` percent-encoded, since WebDataset splits a sample key at its first dot. Members have
mtime 0, owner 0 and mode 0644, so the same rows in the same order give the same bytes. (Both writers keep the
order they are given: the combine stage sorts by id, the augment stage goes parent by parent.)

**Atomicity and resume.** A shard is written to a temp file beside it (:func:`atomic_output`) and renamed into
place, so a killed run never leaves a partial shard under a final name. Each shard records a *plan key* — the
hash of what it was made from (Parquet: schema metadata ``flare.plan``; tar: a PAX global header).
:func:`complete_shard` accepts a shard only when its plan key matches and every image hashes to its recorded
sha256, so a re-run skips the complete shards and redoes the rest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from flare.core.errors import ManifestError
from flare.core.files import atomic_output, sha256_bytes, sha256_file
from flare.core.hf_columns import ExportColumns

__all__ = ["ShardRow", "ShardWriter", "ShardLayout", "SHARD_SUFFIXES", "SHARDS_DIR", "ROW_GROUP_ROWS", "PLAN_KEY",
           "shard_file_name", "member_path", "split_member", "write_shard", "complete_shard", "shard_plan",
           "shard_members", "read_image_bytes", "open_image_source", "image_exists", "image_sha256", "recorded_sha256",
           "estimated_size", "remove_stale_shards", "plan_key", "iter_shard"]

ShardLayout = Literal["parquet", "webdataset"]
SHARD_SUFFIXES: dict[str, str] = {"parquet": ".parquet", "webdataset": ".tar"}
SHARDS_DIR = "shards"
ROW_GROUP_ROWS = 100  # datasets.config.PARQUET_ROW_GROUP_SIZE_FOR_IMAGE_DATASETS
PLAN_KEY = "flare.plan"
_SHARD_NAME = re.compile(r"^(?P<prefix>.+)-\d{5}-of-\d{5}\.(parquet|tar)$")
_ROW_GROUP_CACHE_SIZE = 8  # decoded row groups kept per process (~4 MB each at 40 KiB an image)
_INDEX_CACHE_SIZE = 256  # shard indexes kept per process (~1 MB each for a 256 MB shard of 40 KiB images)


@dataclass(frozen=True)
class ShardRow:
    """One image of a shard: its member name (``<id>.<ext>``), encoded bytes and manifest row."""

    member: str
    data: bytes
    row: Mapping[str, Any]


def shard_file_name(prefix: str, index: int, count: int, layout: str) -> str:
    """``train-00000-of-00004.parquet``: Hugging Face's shard naming (the split is read from the prefix)."""
    return f"{prefix}-{index:05d}-of-{count:05d}{SHARD_SUFFIXES[layout]}"


def member_path(container: str, member: str) -> str:
    """The manifest ``path`` of ``member`` inside the shard at ``container`` (relative to the dataset root)."""
    return f"{container.rstrip('/')}/{member}"


def split_member(path: str | Path) -> tuple[Path, str] | None:
    """``(shard file, member)`` when ``path`` names a member of a shard, else None. Lexical: no file access."""
    text = os.fspath(path)
    slash = text.rfind("/")
    if slash <= 0:
        return None
    container = text[:slash]
    if not container.endswith((".parquet", ".tar")):
        return None
    return Path(container), text[slash + 1:]


def plan_key(parts: Sequence[Any]) -> str:
    """The hash of what a shard is made from (JSON of ``parts``), recorded in it for resume."""
    return hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- writing


def _webdataset_key(row_id: str) -> str:
    return row_id.replace("%", "%25").replace(".", "%2E")


def _key_to_id(key: str) -> str:
    return key.replace("%2E", ".").replace("%25", "%")


class ShardWriter:
    """Write one shard row by row, in the order given: to a temp file beside ``path``, renamed into place when
    the ``with`` block ends without an error (on an error, or a kill, no shard appears under its name).

    Rows can be added while others are still being made (the augment stage writes one group of parents while
    its threads render the next); Parquet row groups close every :data:`ROW_GROUP_ROWS` rows, so the bytes
    depend only on the rows and their order.
    """

    def __init__(self, path: str | Path, layout: ShardLayout, columns: ExportColumns, plan: str):
        if layout not in SHARD_SUFFIXES:  # pragma: no cover - pydantic restricts the layout
            raise ManifestError(f"shard: layout {layout!r} is not one of {', '.join(SHARD_SUFFIXES)}")
        self.path, self.layout, self.columns, self.plan = Path(path), layout, columns, plan
        self._pending: list[ShardRow] = []

    def __enter__(self) -> "ShardWriter":
        self._output = atomic_output(self.path)
        tmp = self._output.__enter__()
        if self.layout == "parquet":
            self._schema = self.columns.schema([(_IMAGE_FIELD, {"_type": "Image"})], {PLAN_KEY: self.plan})
            others = [f.name for f in self.columns.fields()]
            self._parquet = pq.ParquetWriter(
                tmp, self._schema,
                compression={"image.bytes": "none", "image.path": "zstd", **{name: "zstd" for name in others}},
                use_dictionary=["image.path", *others], write_statistics=["image.path", *others])
        else:
            self._tar = tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT, pax_headers={PLAN_KEY: self.plan})
        return self

    def add(self, rows: Sequence[ShardRow]) -> None:
        if self.layout == "webdataset":
            for row in rows:
                key = _webdataset_key(str(row.row["id"]))
                _tar_member(self._tar, key + (Path(row.member).suffix or ".png"), row.data)
                _tar_member(self._tar, key + ".json", json.dumps(self.columns.named(row.row), sort_keys=True).encode())
                _tar_member(self._tar, key + ".cls", str(self.columns.class_index(row.row)).encode())
            return
        self._pending.extend(rows)
        while len(self._pending) >= ROW_GROUP_ROWS:
            self._write_row_group(self._pending[:ROW_GROUP_ROWS])
            del self._pending[:ROW_GROUP_ROWS]

    def _write_row_group(self, part: Sequence[ShardRow]) -> None:
        # Arrays first, then the struct: ~17x faster than converting a list of dicts.
        images = pa.StructArray.from_arrays([pa.array([r.data for r in part], pa.binary()),
                                             pa.array([r.member for r in part], pa.string())],
                                            fields=list(_IMAGE_FIELD.type))
        self._parquet.write_table(self.columns.table([r.row for r in part], {"image": images}, self._schema),
                                  row_group_size=ROW_GROUP_ROWS)

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if self.layout == "parquet":
                if kind is None and self._pending:
                    self._write_row_group(self._pending)
                self._parquet.close()
            else:
                self._tar.close()
        except BaseException as error:  # a failed close must not rename a broken file into place
            self._output.__exit__(type(error), error, error.__traceback__)
            raise
        self._output.__exit__(kind, value, traceback)


def write_shard(path: str | Path, rows: Sequence[ShardRow], layout: ShardLayout, columns: ExportColumns,
                plan: str) -> Path:
    """Write ``rows``, in the order given, as one shard at ``path``, atomically; returns ``path``."""
    with ShardWriter(path, layout, columns, plan) as writer:
        writer.add(rows)
    return Path(path)


_IMAGE_FIELD = pa.field("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


def remove_stale_shards(folder: str | Path, prefix: str, keep: Sequence[str]) -> list[str]:
    """Delete the shards named ``<prefix>-NNNNN-of-NNNNN.*`` in ``folder`` that are not in ``keep`` (a smaller
    re-run leaves no shard of the previous plan for a ``data_dir`` glob to pick up); returns their names."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    wanted = set(keep)
    for file in sorted(folder.iterdir()):
        match = _SHARD_NAME.match(file.name)
        if match and match.group("prefix") == prefix and file.name not in wanted and file.is_file():
            file.unlink()
            removed.append(file.name)
    return removed


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class _Index:
    """Where each member of one shard lies: Parquet ``(row group, position)``, tar ``(offset, size)``."""

    stamp: tuple[int, int]
    layout: str
    members: dict[str, tuple[int, int, str]]  # member → (a, b, recorded sha256)
    plan: str | None
    metadata: Any = None  # Parquet FileMetaData, reused for every read


_lock = threading.Lock()
_indexes: "OrderedDict[str, _Index]" = OrderedDict()
_row_groups: "OrderedDict[tuple, list[bytes]]" = OrderedDict()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _layout_of(path: Path) -> str:
    return "webdataset" if path.suffix == ".tar" else "parquet"


def _index(container: Path) -> _Index:
    """The member index of ``container``, built once per file version (mtime and size) and process."""
    key = os.fspath(container)
    stamp = _stamp(container)
    with _lock:
        cached = _indexes.get(key)
        if cached is not None and cached.stamp == stamp:
            _indexes.move_to_end(key)
            return cached
    index = _read_tar_index(container, stamp) if _layout_of(container) == "webdataset" else \
        _read_parquet_index(container, stamp)
    with _lock:
        _indexes[key] = index
        while len(_indexes) > _INDEX_CACHE_SIZE:
            _indexes.popitem(last=False)
    return index


def _read_parquet_index(container: Path, stamp: tuple[int, int]) -> _Index:
    parquet = pq.ParquetFile(container)
    metadata = parquet.metadata
    table = parquet.read(columns=["image.path", "sha256"])  # the struct keeps only its ``path`` field
    names = [image["path"] for image in table.column("image").to_pylist()]
    digests = table.column("sha256").to_pylist()
    members, row = {}, 0
    for group in range(metadata.num_row_groups):
        for position in range(metadata.row_group(group).num_rows):
            members[names[row]] = (group, position, digests[row] or "")
            row += 1
    plan = (parquet.schema_arrow.metadata or {}).get(PLAN_KEY.encode())
    return _Index(stamp, "parquet", members, plan.decode() if plan else None, metadata)


def _read_tar_index(container: Path, stamp: tuple[int, int]) -> _Index:
    places: dict[str, tuple[str, int, int]] = {}  # key → (member, offset, size)
    digests: dict[str, str] = {}
    with tarfile.open(container, "r:") as tar:
        plan = tar.pax_headers.get(PLAN_KEY)
        for info in tar:
            if not info.isfile():
                continue
            key, _, extension = info.name.partition(".")  # the key's own dots are percent-encoded
            if extension == "json":
                digests[key] = json.loads(tar.extractfile(info).read()).get("sha256", "")  # type: ignore[union-attr]
            elif extension != "cls":
                places[key] = (f"{_key_to_id(key)}.{extension}", info.offset_data, info.size)
    members = {member: (offset, size, digests.get(key, "")) for key, (member, offset, size) in places.items()}
    return _Index(stamp, "webdataset", members, plan)


def _member(path: str | Path) -> tuple[Path, str, _Index, tuple[int, int, str]]:
    split = split_member(path)
    if split is None:
        raise ManifestError(f"shard: {os.fspath(path)!r} does not name a member of a shard")
    container, member = split
    try:
        index = _index(container)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pyarrow and tarfile raise several types for torn or foreign files
        raise ManifestError(f"shard: {str(container)!r} is not a readable shard ({exc})") from None
    place = index.members.get(member)
    if place is None:
        raise FileNotFoundError(f"shard {str(container)!r} holds no member {member!r}")
    return container, member, index, place


def _row_group(container: Path, index: _Index, group: int) -> list[bytes]:
    key = (os.fspath(container), index.stamp, group)
    with _lock:
        cached = _row_groups.get(key)
        if cached is not None:
            _row_groups.move_to_end(key)
            return cached
    parquet = pq.ParquetFile(container, metadata=index.metadata)
    column = parquet.read_row_group(group, columns=["image.bytes"]).column(0).combine_chunks()
    values = column.field("bytes").to_pylist()
    with _lock:
        _row_groups[key] = values
        while len(_row_groups) > _ROW_GROUP_CACHE_SIZE:
            _row_groups.popitem(last=False)
    return values


def open_image_source(path: str | Path) -> Path | io.BytesIO:
    """What ``PIL.Image.open`` takes for ``path``: the path of a file, or the bytes of a shard member."""
    if split_member(path) is None or Path(path).is_file():
        return Path(path)
    return io.BytesIO(read_image_bytes(path))


def read_image_bytes(path: str | Path) -> bytes:
    """The encoded bytes of an image: a file's content, or a shard member's bytes.

    Raises:
        FileNotFoundError: the file, the shard or the member does not exist.
        ManifestError: the shard is not readable.
    """
    if split_member(path) is None or Path(path).is_file():
        return Path(path).read_bytes()
    container, _, index, (a, b, _) = _member(path)
    if index.layout == "parquet":
        return _row_group(container, index, a)[b]
    with open(container, "rb") as handle:
        handle.seek(a)
        return handle.read(b)


def image_exists(path: str | Path) -> bool:
    """Whether ``path`` is a file, or a member of a readable shard."""
    if split_member(path) is None or Path(path).is_file():
        return Path(path).is_file()
    try:
        _member(path)
    except (OSError, ManifestError):
        return False
    return True


def image_sha256(path: str | Path) -> str:
    """SHA-256 of the image bytes at ``path`` (file or shard member)."""
    if split_member(path) is None or Path(path).is_file():
        return sha256_file(path)
    return sha256_bytes(read_image_bytes(path))


def recorded_sha256(path: str | Path) -> str | None:
    """The sha256 a shard records for its member ``path`` (None when the shard or member is missing); cheap:
    it reads the shard's index, not the image."""
    try:
        return _member(path)[3][2]
    except (OSError, ManifestError):
        return None


def estimated_size(path: str | Path) -> int:
    """Bytes an image takes, for sizing shards: a file's size, or its shard's size over its member count."""
    if split_member(path) is None or Path(path).is_file():
        return Path(path).stat().st_size
    container, _, index, _ = _member(path)
    return index.stamp[1] // max(1, len(index.members))


def shard_members(container: str | Path) -> dict[str, str]:
    """``{member: recorded sha256}`` of a shard."""
    return {member: place[2] for member, place in _index(Path(container)).members.items()}


def shard_plan(container: str | Path) -> str | None:
    """The plan key a shard records, or None when it is missing, torn or foreign."""
    try:
        return _index(Path(container)).plan
    except Exception:  # a torn or foreign file is no complete shard
        return None


def iter_shard(container: str | Path) -> Iterator[tuple[str, bytes, str]]:
    """``(member, bytes, recorded sha256)`` of every image of a shard, in file order."""
    container = Path(container)
    if _layout_of(container) == "parquet":
        parquet = pq.ParquetFile(container)
        for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS, columns=["image", "sha256"]):
            images = batch.column(0)
            for name, data, digest in zip(images.field("path").to_pylist(), images.field("bytes").to_pylist(),
                                          batch.column(1).to_pylist()):
                yield name, data, digest or ""
        return
    index = _index(container)
    with open(container, "rb") as handle:
        for member, (offset, size, digest) in sorted(index.members.items(), key=lambda item: item[1][0]):
            handle.seek(offset)
            yield member, handle.read(size), digest


def complete_shard(container: str | Path, plan: str) -> dict[str, str] | None:
    """``{member: sha256}`` when the shard at ``container`` is complete for ``plan`` (its plan key matches and
    every image hashes to the sha256 it records), else None: the shard is to be written again."""
    container = Path(container)
    if not container.is_file() or shard_plan(container) != plan:
        return None
    found = {}
    try:
        for member, data, digest in iter_shard(container):
            if not digest or sha256_bytes(data) != digest:
                return None
            found[member] = digest
    except Exception:  # torn or foreign: redo it
        return None
    return found
