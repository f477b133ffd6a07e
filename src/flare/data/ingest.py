"""Ingestion: a folder of class folders, or a CSV/Parquet of ``path,label[,origin]``, into a FLARE dataset.

The dataset folder gets ``manifest.parquet`` (stage ``ingest``, with the split already made),
``taxonomy.yaml``, ``quarantine.csv`` (every rejected file or folder with its reason) and
``ingest_report.json`` (counts, exact duplicates, label conflicts, skipped folders). Files that need no
conversion (8-bit RGB PNG/JPEG) are referenced in place with ``storage='auto'``; everything else is converted
to PNG under ``images/``. One bad file never stops the run, and an input file is never changed.

Origins. ``origin_id`` names the sky object an image shows, so that the split keeps all of one object's
images on one side. It is the table's ``origin`` value where there is one; otherwise ``origin_from`` says:

- ``path`` (default): the file's path relative to the source, without its suffix (``elliptical/0``). The
  usual ImageFolder export, where every class folder holds ``0.png, 1.png, ...``, is then many objects;
  one name in two class folders is a conflict only when the bytes are equal.
- ``stem``: the file name without its suffix, for collections whose file names are object ids (GZ1: SDSS
  objids). One name under two labels is then one object filed twice, and is quarantined as a conflict.

Image ids are the file name without its suffix (``~2``, ``~3`` for repeats), never the origin: the origin
is data from the table, and ids become file names.

Quarantined, with the reason in ``quarantine.csv``:

- a link whose target lies outside the source (folder or table alike; a link inside it is an ordinary
  file), and a table path with ``..`` or an absolute path outside the table's folder;
- a symlinked folder (never followed: no loops, nothing counted twice) and a folder that cannot be listed,
  also listed under ``skipped_folders`` in ``ingest_report.json``; a file beside the class folders;
- a file or folder name that is not UTF-8 (shown with backslash escapes: the manifest is UTF-8);
- a table row without a path or label (null or blank);
- an image with a side under ``data.min_side_px`` (8 px by default): too small to classify or upscale, it is
  kept out rather than silently padded; lower ``data.min_side_px`` to keep such images;
- whatever :func:`flare.core.io.read_image` refuses (empty, truncated, corrupt, too large, unreadable, ...).

Refused with a one-line error before anything is written: an output folder inside the source folder (a
second run would read it as a class), an unreadable table, an unknown taxonomy or labels outside it, and
``storage='reference'`` for a file that needs conversion. Hidden files and folders (``.name``) are ignored.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from pydantic import ValidationError

from flare.core.config import DataConfig, format_validation_error
from flare.core.errors import ConfigError, FlareError, ImageReadError
from flare.core.files import (atomic_write_bytes, prepare_output_dir, remove_stale_temp_files, safe_join, sha256_bytes,
                              sha256_file)
from flare.core.io import FITS_SUFFIXES, IMAGE_SUFFIXES, ReadOptions, encode_image, read_image
from flare.core.manifest import Manifest, cell_text
from flare.core.progress import track
from flare.core.taxonomy import LABEL_PATTERN, Taxonomy, load_taxonomy
from flare.data.split import assign_splits

__all__ = ["ingest", "IngestResult", "discover_sources", "Discovery"]

# The one default (and, through validation, the one list of rules) is DataConfig.origin_from's.
_DEFAULT_ORIGIN_FROM: str = DataConfig.model_fields["origin_from"].default

# Longest first, so that ".fits.gz" is taken off whole.
_SUFFIXES = sorted(FITS_SUFFIXES + IMAGE_SUFFIXES, key=len, reverse=True)


@dataclass
class SourceItem:
    path: Path
    label: str
    origin_id: str
    name: str  # image id before de-duplication: the listed file name without its suffix


@dataclass
class Discovery:
    """What a source lists: items to read, entries refused before reading, folders not looked into."""

    items: list[SourceItem] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    skipped_folders: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class IngestResult:
    manifest: Manifest
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    label_conflicts: list[dict[str, Any]] = field(default_factory=list)
    skipped_folders: list[tuple[str, str]] = field(default_factory=list)  # also in ``quarantined``

    def summary(self) -> dict[str, Any]:
        frame = self.manifest.frame
        return {
            "images": int(len(frame)),
            "classes": {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()},
            "splits": {str(k): int(v) for k, v in frame["split"].value_counts().sort_index().items()},
            "quarantined": len(self.quarantined),
            "skipped_folders": len(self.skipped_folders),
            "exact_duplicates": len(self.duplicates),
            "label_conflicts": len(self.label_conflicts),
        }


def read_options(config: DataConfig) -> ReadOptions:
    return ReadOptions(fits_hdu=config.fits_hdu, interval=config.interval, percentile_low=config.percentile_low,
                       percentile_high=config.percentile_high, stretch=config.stretch, stretch_a=config.stretch_a,
                       background_clip=config.background_clip,
                       background_sigma=config.background_sigma, grey_policy=config.grey_policy,
                       alpha_policy=config.alpha_policy, max_pixels=config.max_pixels, min_side_px=config.min_side_px)


def discover_sources(source: str | Path, origin_from: str = _DEFAULT_ORIGIN_FROM) -> Discovery:
    """List the items of a folder of class folders or of a CSV/Parquet table, and what is refused unread.

    ``origin_from`` is ``"path"`` or ``"stem"`` (see the module docstring); its default is
    ``DataConfig.origin_from``'s.
    """
    source = Path(source)
    if not _is_utf8(str(source.resolve())):
        raise ConfigError(f"data.source: {_display(source)!r} is not a valid UTF-8 path (rename it)")
    if source.is_dir():
        return _discover_folder(source, origin_from)
    if not source.is_file():
        raise ConfigError(f"data.source: {_display(source)!r} is neither a folder of class folders "
                          f"nor a CSV/Parquet file")
    return _discover_table(source, origin_from)


def _discover_folder(source: Path, origin_from: str) -> Discovery:
    found = Discovery()

    def walk(folder: Path, label: str) -> None:
        for entry in _list_folder(folder, found):
            path = folder / entry.name
            if entry.is_dir():  # a link to a folder too: _skipped_folder_reason refuses it
                if reason := _skipped_folder_reason(entry):
                    found.skipped_folders.append((_display(path), reason))
                else:
                    walk(path, label)
                continue
            if not _is_utf8(entry.name):
                found.rejected.append((_display(path), "file name is not valid UTF-8 (rename it)"))
                continue
            relative = path.relative_to(source)
            if entry.is_symlink():
                target = _resolve_inside(source, relative)
                if reason := (_leaves(source) if target is None else _name_reason(target)):
                    found.rejected.append((str(path), reason))
                    continue
            origin = _without_suffix(relative.as_posix() if origin_from == "path" else entry.name)
            found.items.append(SourceItem(path, label, origin, _without_suffix(entry.name)))

    for entry in _list_folder(source, found, top=True):
        path = source / entry.name
        if not entry.is_dir():
            found.rejected.append((_display(path), "not inside a class folder"))
        elif reason := _skipped_folder_reason(entry):
            found.skipped_folders.append((_display(path), reason))
        elif not LABEL_PATTERN.match(entry.name):
            found.skipped_folders.append((_display(path), f"unsafe class folder name {entry.name!r}"))
        else:
            walk(path, entry.name)
    return found


def _skipped_folder_reason(entry: os.DirEntry) -> str | None:
    """Why a folder is not looked into (a link: no loops, nothing counted twice; a name the manifest can't hold)."""
    if entry.is_symlink():
        return "symlinked folder not followed"
    if not _is_utf8(entry.name):
        return "folder name is not valid UTF-8 (rename it)"
    return None


def _list_folder(folder: Path, found: Discovery, *, top: bool = False) -> list[os.DirEntry]:
    """The folder's visible entries by name. A sub-folder that cannot be listed is reported under
    ``skipped_folders``; the source folder itself (``top``) is a one-line error."""
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or type(exc).__name__)
        if top:
            raise FlareError(f"data.source: cannot list {_display(folder)!r}: {reason}") from None
        found.skipped_folders.append((_display(folder), f"unreadable folder: {reason}"))
        return []


def _discover_table(source: Path, origin_from: str) -> Discovery:
    table = _read_table(source)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise ConfigError(f"data.source: {source.name!r} lacks column(s) {', '.join(sorted(missing))}")
    found = Discovery()
    root = source.parent
    root_resolved = root.resolve()
    for number, row in enumerate(table.to_dict("records"), start=1):
        raw_path, label = cell_text(row["path"]).strip(), cell_text(row["label"]).strip()
        if not raw_path:
            found.rejected.append((f"{source.name} row {number}", "no path"))
            continue
        path = _resolve_inside(root, raw_path)
        if path is None:
            found.rejected.append((raw_path, _leaves(root)))
            continue
        if not label:
            found.rejected.append((raw_path, "no label"))
            continue
        if not LABEL_PATTERN.match(label):
            found.rejected.append((raw_path, f"unsafe or empty label {label!r}"))
            continue
        if reason := _name_reason(path):
            found.rejected.append((raw_path, reason))
            continue
        relative = path.relative_to(root_resolved).as_posix()
        origin = cell_text(row.get("origin")).strip() or _without_suffix(relative if origin_from == "path" else path.name)
        found.items.append(SourceItem(path, label, origin, _without_suffix(PurePosixPath(raw_path).name)))
    return found


def _read_table(source: Path) -> pd.DataFrame:
    """The table as a DataFrame; anything unreadable is a one-line ConfigError naming the file."""
    suffix = source.suffix.lower()
    if suffix not in (".parquet", ".csv", ".tsv"):
        raise ConfigError(f"data.source: {source.name!r} must be a folder, .csv, .tsv or .parquet")
    kind = "Parquet" if suffix == ".parquet" else "CSV"
    try:
        if suffix == ".parquet":
            return pd.read_parquet(source)
        return pd.read_csv(source, dtype=str, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"data.source: {source.name!r} is empty (no header row)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"data.source: {source.name!r} is not UTF-8 text (byte {exc.start})") from None
    except (OSError, ValueError) as exc:  # ParserError, pyarrow's ArrowInvalid and OSError are among these
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"data.source: {source.name!r} cannot be read as {kind} ({text})") from None


def _resolve_inside(root: Path, relative: str | Path) -> Path | None:
    """The one link policy for folders and tables: the resolved path, or None where it leaves ``root``."""
    try:
        return safe_join(root, relative)
    except FlareError:
        return None


def _leaves(root: Path) -> str:
    return f"unsafe path: it leaves the source {_display(root)!r}"


def _name_reason(resolved: Path) -> str | None:
    """Why a link's resolved target cannot be recorded (the manifest is UTF-8), or None."""
    return None if _is_utf8(str(resolved)) else "link target's name is not valid UTF-8 (rename it)"


def _is_utf8(text: str) -> bool:
    # os.scandir gives undecodable bytes as lone surrogates, which cannot be encoded back to UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _display(path: str | Path) -> str:
    """A path as printable UTF-8 text: undecodable bytes become ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _without_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name[: -len(PurePosixPath(name).suffix) or None]


def _needs_conversion(info: dict[str, Any]) -> bool:
    return not (info.get("format") in ("JPEG", "PNG") and info.get("mode") == "RGB" and "frames" not in info)


def _check_output(source: Path, out: Path) -> None:
    """Refuse, before any image is read, an output folder that a later run would read as part of the source,
    or that is a file (:func:`~flare.core.files.prepare_output_dir` checks its parents when it creates it)."""
    if source.is_dir():
        source_resolved, out_resolved = source.resolve(), out.resolve()
        if out_resolved == source_resolved or source_resolved in out_resolved.parents:
            raise FlareError(f"ingest: the output folder {_display(out)!r} is inside the source {_display(source)!r}; "
                             f"a second run would read it as a class folder, so write it elsewhere")
    if out.exists() and not out.is_dir():
        raise FlareError(f"ingest: the output {_display(out)!r} exists and is not a folder")


def _resolve_taxonomy(taxonomy: Taxonomy | str | Path | None, labels: list[str]) -> Taxonomy:
    if isinstance(taxonomy, (str, Path)):
        taxonomy = load_taxonomy(taxonomy)
    if taxonomy is None:
        return Taxonomy("auto", {label: label for label in labels})
    unknown = [label for label in labels if label not in taxonomy.fine_to_macro]
    if unknown:
        raise ConfigError(f"data.taxonomy: labels {unknown} are not in taxonomy {taxonomy.name!r} "
                          f"({', '.join(taxonomy.fine_classes)})")
    return taxonomy


def ingest(source: str | Path, out: str | Path, config: DataConfig | None = None, *, seed: int = 0,
           taxonomy: Taxonomy | str | None = None, origin_from: str | None = None) -> IngestResult:
    """Read, validate and split a labelled image collection into the dataset folder ``out``.

    Everything that can refuse the whole run (source, output place, taxonomy, labels, ``storage='reference'``
    for a file that needs conversion) is checked before ``out`` is created, so a failed run leaves an earlier dataset there as it was.

    Args:
        source: folder of class folders, or a CSV/Parquet file with ``path``, ``label`` and optional ``origin``.
        out: the dataset folder to write (created); it may not lie inside a source folder.
        config: read, storage and split options (defaults when None).
        seed: split seed.
        taxonomy: a Taxonomy, a preset name or YAML path; None builds one with macro = fine label.
        origin_from: overrides ``config.origin_from`` (where an origin comes from when the table gives none:
            ``path``, the file's path in the source, or ``stem``, its name, for collections named by object id
            such as GZ1); None keeps the config's value, whose default is ``path``.
    """
    config = config or DataConfig()
    if origin_from is not None:
        config = config.model_copy()
        try:
            config.origin_from = origin_from  # validated by DataConfig (validate_assignment)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "data")) from None
    source, out = Path(source), Path(out)
    _check_output(source, out)
    options = read_options(config)
    found = discover_sources(source, config.origin_from)
    quarantined = found.rejected + found.skipped_folders
    if not found.items:
        first = f"; {len(quarantined)} refused, e.g. {quarantined[0][0]}: {quarantined[0][1]}" if quarantined else ""
        raise FlareError(f"ingest: no image files found in {_display(source)!r}{first}")
    taxonomy = _resolve_taxonomy(taxonomy, sorted({item.label for item in found.items}))

    def process(item: SourceItem) -> tuple[SourceItem, dict[str, Any] | None, str | None]:
        try:
            array, info = read_image(item.path, options)
            convert = config.storage == "convert" or (config.storage == "auto" and _needs_conversion(info))
            # Only the encoded PNG of a converted image is held until it is written, not the decoded array.
            png = encode_image(array, "png") if convert else None
            return item, {"info": info, "sha256": sha256_file(item.path), "png": png}, None
        except ImageReadError as exc:
            return item, None, str(exc)
        except Exception as exc:  # a decoder bug must not stop the run: quarantine with the exception
            return item, None, f"unreadable ({type(exc).__name__}: {exc})"

    decoded: list[tuple[SourceItem, dict[str, Any]]] = []
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        for item, result, reason in track(pool.map(process, found.items), "ingest: reading", total=len(found.items)):
            if reason is not None:
                quarantined.append((str(item.path), reason))
            else:
                decoded.append((item, result))  # type: ignore[arg-type]

    # Exact duplicates (same file content) and images filed under two labels.
    by_hash: dict[str, list[tuple[SourceItem, dict[str, Any]]]] = defaultdict(list)
    for item, result in decoded:
        by_hash[result["sha256"]].append((item, result))
    by_origin_labels: dict[str, set[str]] = defaultdict(set)
    for item, _ in decoded:
        by_origin_labels[item.origin_id].add(item.label)
    duplicates: list[list[str]] = []
    conflicts: list[dict[str, Any]] = []
    kept: list[tuple[SourceItem, dict[str, Any]]] = []
    for digest, group in by_hash.items():
        group_labels = sorted({item.label for item, _ in group})
        if len(group) > 1:
            duplicates.append([str(item.path) for item, _ in group])
        if len(group_labels) > 1:
            conflicts.append({"sha256": digest, "labels": group_labels, "paths": [str(i.path) for i, _ in group]})
            for item, _ in group:
                quarantined.append((str(item.path), f"filed under two labels: {', '.join(group_labels)}"))
            continue
        kept.append(group[0])  # first by path order; later copies are the same bytes
    conflict_origins = {origin for origin, found_labels in by_origin_labels.items() if len(found_labels) > 1}
    for origin in sorted(conflict_origins):
        paths = [str(i.path) for i, _ in kept if i.origin_id == origin]
        conflicts.append({"origin_id": origin, "labels": sorted(by_origin_labels[origin]), "paths": paths})
    for item, _ in [k for k in kept if k[0].origin_id in conflict_origins]:
        quarantined.append((str(item.path), f"origin {item.origin_id} filed under two labels: "
                                            f"{', '.join(sorted(by_origin_labels[item.origin_id]))}"))
    kept = [k for k in kept if k[0].origin_id not in conflict_origins]
    kept.sort(key=lambda k: str(k[0].path))
    if config.storage == "reference":
        for item, result in kept:
            if _needs_conversion(result["info"]):
                raise ConfigError(f"data.storage: reference cannot keep {item.path.name!r} "
                                  f"({result['info'].get('mode')}); use auto")

    prepare_output_dir(out)
    records = _write_records(kept, out, options, taxonomy)
    frame = pd.DataFrame({"origin_id": [r["origin_id"] for r in records], "label": [r["label"] for r in records]})
    if records:
        splits = assign_splits(frame, config.split.model_dump(), seed)
        for record, split in zip(records, splits):
            record["split"] = split
    manifest = Manifest.from_records(records, out)
    remove_stale_temp_files(out)  # a killed earlier run may have left some; every image is written by now
    manifest.write()
    taxonomy.save(out / "taxonomy.yaml")
    result = IngestResult(manifest, sorted(quarantined), duplicates, conflicts, sorted(found.skipped_folders))
    _write_reports(out, result, source)
    return result


def _write_records(kept, out: Path, options: ReadOptions, taxonomy: Taxonomy) -> list[dict]:
    records = []
    used_ids: set[str] = set()
    for item, result in kept:
        base_id = item.name or "image"
        image_id, repeat = base_id, 1
        while image_id in used_ids:  # "~n" for repeats; a file may itself be named "x~2"
            repeat += 1
            image_id = f"{base_id}~{repeat}"
        used_ids.add(image_id)
        info = result["info"]
        convert = result["png"] is not None
        if convert:
            relative = Path("images") / item.label / f"{image_id}.png"
            atomic_write_bytes(out / relative, result["png"])
            path, digest = str(relative), sha256_bytes(result["png"])
        else:
            path, digest = str(item.path.resolve()), result["sha256"]
        backend = "astropy" if info.get("format") == "FITS" else "pillow"
        records.append({
            "id": image_id, "path": path, "sha256": digest, "label": item.label,
            "macro_label": taxonomy.macro(item.label), "origin_id": item.origin_id, "split": "train",
            "stage": "ingest", "operation": "convert" if convert else "reference",
            "params": {"source": str(item.path), "source_sha256": result["sha256"], "read": info,
                       "options": options.to_dict() if convert else {}},
            "seed": None, "backend": backend,
        })
    return records


def _write_reports(out: Path, result: IngestResult, source: Path) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["path", "reason"])
    writer.writerows(result.quarantined)
    atomic_write_bytes(out / "quarantine.csv", text.getvalue().encode())
    report = {"source": _display(source), **result.summary(), "duplicate_groups": result.duplicates,
              "label_conflict_details": result.label_conflicts,
              "skipped_folders": [{"path": path, "reason": reason} for path, reason in result.skipped_folders]}
    atomic_write_bytes(out / "ingest_report.json", json.dumps(report, indent=2).encode())
