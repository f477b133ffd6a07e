"""Ingestion: a folder of class folders, or a CSV/Parquet of ``path,label[,origin]``, into a FLARE dataset.

The dataset folder gets ``manifest.parquet`` (stage ``ingest``, with the split already made),
``taxonomy.yaml``, ``quarantine.csv`` (every rejected file with its reason) and ``ingest_report.json``
(counts, exact duplicates, label conflicts). Files that need no conversion (8-bit RGB PNG/JPEG) are
referenced in place with ``storage='auto'``; everything else is converted to PNG under ``images/``.
One bad file never stops the run.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flare.core.config import DataConfig
from flare.core.errors import ConfigError, FlareError, ImageReadError
from flare.core.files import atomic_write_bytes, remove_stale_temp_files, safe_join, sha256_file
from flare.core.io import FITS_SUFFIXES, IMAGE_SUFFIXES, ReadOptions, read_image, write_image
from flare.core.manifest import Manifest
from flare.core.progress import track
from flare.core.taxonomy import LABEL_PATTERN, Taxonomy, load_taxonomy
from flare.data.split import assign_splits

__all__ = ["ingest", "IngestResult", "discover_sources"]


@dataclass
class SourceItem:
    path: Path
    label: str
    origin_id: str


@dataclass
class IngestResult:
    manifest: Manifest
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    label_conflicts: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        frame = self.manifest.frame
        return {
            "images": int(len(frame)),
            "classes": {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()},
            "splits": {str(k): int(v) for k, v in frame["split"].value_counts().sort_index().items()},
            "quarantined": len(self.quarantined),
            "exact_duplicates": len(self.duplicates),
            "label_conflicts": len(self.label_conflicts),
        }


def read_options(config: DataConfig) -> ReadOptions:
    return ReadOptions(fits_hdu=config.fits_hdu, interval=config.interval, percentile_low=config.percentile_low,
                       percentile_high=config.percentile_high, stretch=config.stretch, stretch_a=config.stretch_a,
                       background_clip=config.background_clip,
                       background_sigma=config.background_sigma, grey_policy=config.grey_policy,
                       alpha_policy=config.alpha_policy, max_pixels=config.max_pixels, min_side_px=config.min_side_px)


def discover_sources(source: str | Path) -> tuple[list[SourceItem], list[tuple[str, str]]]:
    """List (path, label, origin) items and the entries rejected before reading (unsafe paths, bad labels)."""
    source = Path(source)
    rejected: list[tuple[str, str]] = []
    items: list[SourceItem] = []
    if source.is_dir():
        for class_dir in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not LABEL_PATTERN.match(class_dir.name):
                rejected.append((str(class_dir), f"unsafe class folder name {class_dir.name!r}"))
                continue
            for file in sorted(class_dir.rglob("*")):
                if file.name.startswith(".") or file.is_dir():
                    continue
                items.append(SourceItem(file, class_dir.name, _origin_from_name(file)))
        return items, rejected
    if not source.is_file():
        raise ConfigError(f"data.source: {str(source)!r} is neither a folder of class folders nor a CSV/Parquet file")
    if source.suffix.lower() == ".parquet":
        table = pd.read_parquet(source)
    elif source.suffix.lower() in (".csv", ".tsv"):
        table = pd.read_csv(source, dtype=str, sep="\t" if source.suffix.lower() == ".tsv" else ",", keep_default_na=False)
    else:
        raise ConfigError(f"data.source: {source.name!r} must be a folder, .csv, .tsv or .parquet")
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise ConfigError(f"data.source: {source.name!r} lacks column(s) {', '.join(sorted(missing))}")
    root = source.parent
    for row in table.to_dict("records"):
        raw_path, label = str(row["path"]), str(row["label"]).strip()
        try:
            path = safe_join(root, raw_path)
        except FlareError:
            rejected.append((raw_path, f"unsafe path: leaves {str(root)!r}"))
            continue
        if not LABEL_PATTERN.match(label):
            rejected.append((raw_path, f"unsafe or empty label {label!r}"))
            continue
        origin = str(row.get("origin") or "").strip() or _origin_from_name(path)
        items.append(SourceItem(path, label, origin))
    return items, rejected


def _origin_from_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(FITS_SUFFIXES + IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _needs_conversion(path: Path, info: dict[str, Any]) -> bool:
    return not (info.get("format") in ("JPEG", "PNG") and info.get("mode") == "RGB" and "frames" not in info)


def ingest(source: str | Path, out: str | Path, config: DataConfig | None = None, *, seed: int = 0,
           taxonomy: Taxonomy | str | None = None) -> IngestResult:
    """Read, validate and split a labelled image collection into the dataset folder ``out``.

    Args:
        source: folder of class folders, or a CSV/Parquet file with ``path``, ``label`` and optional ``origin``.
        out: the dataset folder to write (created).
        config: read, storage and split options (defaults when None).
        seed: split seed.
        taxonomy: a Taxonomy, a preset name or YAML path; None builds one with macro = fine label.
    """
    config = config or DataConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = read_options(config)
    items, quarantined = discover_sources(source)
    if not items:
        raise FlareError(f"ingest: no image files found in {str(source)!r}")

    if isinstance(taxonomy, (str, Path)):
        taxonomy = load_taxonomy(taxonomy)
    labels = sorted({item.label for item in items})
    if taxonomy is None:
        taxonomy = Taxonomy("auto", {label: label for label in labels})
    unknown = [label for label in labels if label not in taxonomy.fine_to_macro]
    if unknown:
        raise ConfigError(f"data.taxonomy: labels {unknown} are not in taxonomy {taxonomy.name!r} "
                          f"({', '.join(taxonomy.fine_classes)})")

    def process(item: SourceItem) -> tuple[SourceItem, dict[str, Any] | None, str | None]:
        try:
            array, info = read_image(item.path, options)
            return item, {"array": array, "info": info, "sha256": sha256_file(item.path)}, None
        except ImageReadError as exc:
            return item, None, str(exc)
        except Exception as exc:  # a decoder bug must not stop the run: quarantine with the exception
            return item, None, f"unreadable ({type(exc).__name__}: {exc})"

    decoded: list[tuple[SourceItem, dict[str, Any]]] = []
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        for item, result, reason in track(pool.map(process, items), "ingest: reading", total=len(items)):
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
    conflict_origins = {origin for origin, found in by_origin_labels.items() if len(found) > 1}
    for origin in sorted(conflict_origins):
        paths = [str(i.path) for i, _ in kept if i.origin_id == origin]
        conflicts.append({"origin_id": origin, "labels": sorted(by_origin_labels[origin]), "paths": paths})
    for item, _ in [k for k in kept if k[0].origin_id in conflict_origins]:
        quarantined.append((str(item.path), f"origin {item.origin_id} filed under two labels: "
                                            f"{', '.join(sorted(by_origin_labels[item.origin_id]))}"))
    kept = [k for k in kept if k[0].origin_id not in conflict_origins]
    kept.sort(key=lambda k: str(k[0].path))

    records = _write_records(kept, out, config, options, taxonomy)
    frame = pd.DataFrame({"origin_id": [r["origin_id"] for r in records], "label": [r["label"] for r in records]})
    if records:
        splits = assign_splits(frame, config.split.model_dump(), seed)
        for record, split in zip(records, splits):
            record["split"] = split
    manifest = Manifest.from_records(records, out)
    remove_stale_temp_files(out)  # a killed earlier run may have left some; every image is written by now
    manifest.write()
    taxonomy.save(out / "taxonomy.yaml")
    result = IngestResult(manifest, sorted(quarantined), duplicates, conflicts)
    _write_reports(out, result, source)
    return result


def _write_records(kept, out: Path, config: DataConfig, options: ReadOptions, taxonomy: Taxonomy) -> list[dict]:
    records = []
    seen_ids: dict[str, int] = defaultdict(int)
    for item, result in kept:
        base_id = item.origin_id
        seen_ids[base_id] += 1
        image_id = base_id if seen_ids[base_id] == 1 else f"{base_id}~{seen_ids[base_id]}"
        info = result["info"]
        convert = config.storage == "convert" or (config.storage == "auto" and _needs_conversion(item.path, info))
        if convert:
            relative = Path("images") / item.label / f"{image_id}.png"
            digest = write_image(out / relative, result["array"], "png")
            path = str(relative)
        elif config.storage == "reference" and _needs_conversion(item.path, info):
            raise ConfigError(f"data.storage: reference cannot keep {item.path.name!r} ({info.get('mode')}); use auto")
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


def _write_reports(out: Path, result: IngestResult, source: str | Path) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["path", "reason"])
    writer.writerows(result.quarantined)
    atomic_write_bytes(out / "quarantine.csv", text.getvalue().encode())
    report = {"source": str(source), **result.summary(), "duplicate_groups": result.duplicates,
              "label_conflict_details": result.label_conflicts}
    atomic_write_bytes(out / "ingest_report.json", json.dumps(report, indent=2).encode())
