"""The provenance columns a row carries outside FLARE, typed as Hugging Face ``datasets`` features.

``torchvision.datasets.ImageFolder`` and ``datasets.load_dataset("imagefolder")`` read image + label only, and
neither reads ``manifest.parquet``. So every image FLARE exports (an ImageFolder tree's per-split metadata file,
a Parquet shard, a WebDataset sample) carries these columns, taken from its manifest row:

================  ===============================  ==========================================================
column            type                             value
================  ===============================  ==========================================================
``label``         ClassLabel (fine classes)        the row's ``label``
``macro_label``   ClassLabel (macro classes)       the row's ``macro_label`` (its taxonomy macro class when
                                                   the row records none)
``id``            string                           the manifest row id (join key back to the manifest)
``origin_id``     string                           the real object the image derives from (group by it)
``split``         string                           ``train``, ``val`` or ``test``
``stage``         string                           what made it: ``ingest``/``simulate``/``observe`` (real),
                                                   ``upscale``, ``augment``, ``generate``
``operation``     string                           the preset (augment), the type (``t2i``, ...) or backend op
``is_synthetic``  bool                             True for ``generate`` rows (synthesised, not observed)
``seed``          int64, null when none            the per-row seed the stage recorded
``sha256``        string                           of the image bytes
================  ===============================  ==========================================================

Class indices are the positions in the taxonomy's sorted class names: the indices torchvision's ImageFolder
assigns when every class has a folder, and the same in every split (``features["label"].int2str(i)`` gives the
name back). An ImageFolder tree gets ``<split>/metadata.parquet`` (``file_name`` relative to the split folder):
of the metadata files ``datasets`` reads (csv, jsonl, parquet), Parquet is the one that keeps these types, so
``label`` stays a ClassLabel as it was without a metadata file, instead of becoming a string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from flare.core.files import atomic_output
from flare.core.manifest import SPLITS, Manifest, cell_text
from flare.core.taxonomy import Taxonomy

__all__ = ["ExportColumns", "EXPORT_COLUMNS", "SYNTHETIC_STAGES", "METADATA_NAME", "write_imagefolder_metadata"]

EXPORT_COLUMNS = ("label", "macro_label", "id", "origin_id", "split", "stage", "operation", "is_synthetic", "seed",
                  "sha256")
SYNTHETIC_STAGES = ("generate",)
METADATA_NAME = "metadata.parquet"
_STRINGS = ("id", "origin_id", "split", "stage", "operation", "sha256")


class ExportColumns:
    """The export columns of one taxonomy: values per row, the Arrow schema and the ``datasets`` features."""

    def __init__(self, taxonomy: Taxonomy):
        self.fine_classes = list(taxonomy.fine_classes)
        self.macro_classes = list(taxonomy.macro_classes)
        self.fine_to_macro = dict(taxonomy.fine_to_macro)
        self._fine_index = {name: i for i, name in enumerate(self.fine_classes)}
        self._macro_index = {name: i for i, name in enumerate(self.macro_classes)}

    def macro_of(self, row: Mapping[str, Any]) -> str:
        return cell_text(row.get("macro_label")) or self.fine_to_macro.get(cell_text(row.get("label")), "")

    def named(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The columns of ``row`` with labels as names (WebDataset JSON, messages)."""
        seed = row.get("seed")
        return {"label": cell_text(row.get("label")), "macro_label": self.macro_of(row),
                **{name: cell_text(row.get(name)) for name in _STRINGS},
                "is_synthetic": cell_text(row.get("stage")) in SYNTHETIC_STAGES,
                "seed": None if cell_text(seed) == "" else int(seed)}

    def class_index(self, row: Mapping[str, Any]) -> int:
        """The fine label's ClassLabel index (-1, ``datasets``' "no label", for a class outside the taxonomy)."""
        return self._fine_index.get(cell_text(row.get("label")), -1)

    def values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The columns of ``row`` as stored in Parquet: labels as ClassLabel indices."""
        named = self.named(row)
        named["label"] = self.class_index(row)
        named["macro_label"] = self._macro_index.get(named["macro_label"], -1)
        return named

    def fields(self) -> list[pa.Field]:
        types = {"label": pa.int64(), "macro_label": pa.int64(), "is_synthetic": pa.bool_(), "seed": pa.int64()}
        return [pa.field(name, types.get(name, pa.string())) for name in EXPORT_COLUMNS]

    def features(self) -> dict[str, Any]:
        """``datasets.Features.to_dict()`` of the columns (without the image or file name)."""
        out: dict[str, Any] = {}
        for field in self.fields():
            if field.name in ("label", "macro_label"):
                names = self.fine_classes if field.name == "label" else self.macro_classes
                out[field.name] = {"names": names, "_type": "ClassLabel"}
            else:
                out[field.name] = {"dtype": {"int64": "int64", "bool": "bool"}.get(str(field.type), "string"),
                                   "_type": "Value"}
        return out

    def schema(self, first: list[tuple[pa.Field, dict[str, Any]]], metadata: Mapping[str, str] | None = None
               ) -> pa.Schema:
        """``first`` (field, feature) pairs, then the columns; the ``huggingface`` metadata names every feature."""
        features = {field.name: feature for field, feature in first}
        features.update(self.features())
        meta = {"huggingface": json.dumps({"info": {"features": features}}, sort_keys=False)}
        meta.update(metadata or {})
        return pa.schema([field for field, _ in first] + self.fields(), metadata=meta)

    def table(self, rows: Iterable[Mapping[str, Any]], first: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
        """A table of ``first`` columns (already built) followed by the columns of ``rows``."""
        values = [self.values(row) for row in rows]
        arrays = {name: column for name, column in first.items()}
        for field in self.fields():
            arrays[field.name] = [v[field.name] for v in values]
        return pa.Table.from_pydict(arrays, schema=schema)


def write_imagefolder_metadata(root: str | Path, manifest: Manifest, taxonomy: Taxonomy) -> list[Path]:
    """Write ``<split>/metadata.parquet`` for every split folder of an ImageFolder tree under ``root``.

    A row enters its split's file when its ``path`` is ``<split>/...`` and the file exists (a lazy augmentation
    recipe has none until ``flare augment export``, which calls this again). A split with no such row has its
    stale metadata file removed, so ``datasets`` never pairs a file name with a missing image. Returns the
    files written.
    """
    root = Path(root)
    columns = ExportColumns(taxonomy)
    schema = columns.schema([(pa.field("file_name", pa.string()), {"dtype": "string", "_type": "Value"})])
    written = []
    for split in SPLITS:
        prefix = f"{split}/"
        rows = [r for r in manifest.records()
                if cell_text(r["path"]).startswith(prefix) and (root / r["path"]).is_file()]
        target = root / split / METADATA_NAME
        if not rows:
            target.unlink(missing_ok=True)
            continue
        rows.sort(key=lambda r: r["id"])
        table = columns.table(rows, {"file_name": [r["path"][len(prefix):] for r in rows]}, schema)
        with atomic_output(target) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        written.append(target)
    return written
