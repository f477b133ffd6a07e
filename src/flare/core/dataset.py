"""A FLARE dataset: one folder holding ``manifest.parquet``, ``taxonomy.yaml`` and the images the rows point at.

Every stage reads one with :meth:`Dataset.open` and writes its output with ``dataset.derive(out)`` (the input
rows rebased to the new folder, the same taxonomy) followed by :meth:`Dataset.write`. A folder without a
``taxonomy.yaml`` gets one inferred from its rows (each label's macro class as the rows record it, else the
label itself), so every stage sees the same classes whatever it runs after. New rows built from a parent row
come from :func:`derive_row`, so the columns a child inherits are chosen in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from flare.core.manifest import Manifest, check_rows
from flare.core.taxonomy import Taxonomy, load_taxonomy

__all__ = ["Dataset", "TAXONOMY_NAME", "derive_row", "inferred_taxonomy"]

TAXONOMY_NAME = "taxonomy.yaml"
# What a derived row inherits from its parent unless the stage says otherwise.
_INHERITED = ("label", "macro_label", "origin_id", "split")


def inferred_taxonomy(manifest: Manifest) -> Taxonomy:
    """Labels as fine classes, each mapped to the macro class its rows record (itself when none is recorded)."""
    frame = manifest.frame
    mapping = {str(label): (str(macro) if isinstance(macro, str) and macro else str(label))
               for label, macro in zip(frame["label"], frame["macro_label"])}
    return Taxonomy("inferred", dict(sorted(mapping.items())))


@dataclass
class Dataset:
    """A dataset folder: its manifest (paths relative to ``root``) and its taxonomy."""

    root: Path
    manifest: Manifest
    taxonomy: Taxonomy

    @staticmethod
    def exists(root: str | Path) -> bool:
        return Manifest.exists(root)

    @classmethod
    def open(cls, root: str | Path) -> "Dataset":
        """Read ``root``'s manifest and taxonomy (inferred from the rows when the folder has no taxonomy file).

        Every row is checked against the containment rule (:func:`flare.core.manifest.check_rows`: safe ids,
        labels of the taxonomy, no path out of the folder) before any stage sees it."""
        root = Path(root)
        manifest = Manifest.read(root)
        file = root / TAXONOMY_NAME
        if file.is_file():
            taxonomy = load_taxonomy(file)
            check_rows(manifest, taxonomy)
        else:
            check_rows(manifest)
            taxonomy = inferred_taxonomy(manifest)
        return cls(root, manifest, taxonomy)

    def derive(self, out: str | Path) -> "Dataset":
        """The dataset a stage writes to ``out``: the same rows (paths rebased to stay valid) and taxonomy."""
        out = Path(out)
        return Dataset(out, self.manifest.rebase(out), self.taxonomy)

    def with_manifest(self, manifest: Manifest) -> "Dataset":
        return Dataset(self.root, manifest, self.taxonomy)

    def write(self) -> Path:
        """Write the manifest (atomic, sorted by id) and the taxonomy; returns the manifest file."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.taxonomy.save(self.root / TAXONOMY_NAME)
        return self.manifest.write(self.root)


def derive_row(parent: Mapping[str, Any] | None, **columns: Any) -> dict[str, Any]:
    """A manifest row made from ``parent``: label, macro label, origin and split inherited, ``parent_ids`` the
    parent's id and ``truth_path`` empty (a derived image has no ground truth of its own), then ``columns`` on
    top. ``parent=None`` starts a row with no parent (a text-to-image sample)."""
    row: dict[str, Any] = {"parent_ids": [], "truth_path": ""}
    if parent is not None:
        row.update({name: parent[name] for name in _INHERITED})
        row["parent_ids"] = [parent["id"]]
    row.update(columns)
    return row
