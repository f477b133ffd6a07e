"""Out-of-domain label mappings: another dataset's classes → our fine class, our macro class, or ``ignore``.

A mapping file::

    dataset: /data/other-survey        # optional: a FLARE dataset folder (manifest.parquet)
    name: other-survey                 # optional: shown in the report
    classes:
      E: elliptical                    # a fine class of our taxonomy (scored on fine and macro)
      S: disk                          # a macro class (scored on macro only)
      artefact: ignore                 # left out of every score
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from flare.core.errors import ConfigError
from flare.core.taxonomy import Taxonomy

__all__ = ["LabelMapping", "load_label_mapping", "IGNORE"]

IGNORE = "ignore"


@dataclass(frozen=True)
class LabelMapping:
    name: str
    classes: dict[str, str]
    dataset: str | None = None

    def targets(self, their_label: str, taxonomy: Taxonomy) -> tuple[str | None, str] | None:
        """``(fine or None, macro)`` truth for one of their labels; None when ignored."""
        if their_label not in self.classes:
            raise ConfigError(f"label mapping {self.name!r}: label {their_label!r} is not mapped "
                              f"(add it to classes, or map it to {IGNORE})")
        ours = self.classes[their_label]
        if ours == IGNORE:
            return None
        if ours in taxonomy.fine_to_macro:
            return ours, taxonomy.macro(ours)
        if ours in taxonomy.macro_classes:
            return None, ours
        raise ConfigError(f"label mapping {self.name!r}: {their_label!r} → {ours!r} is neither a fine class "
                          f"({', '.join(taxonomy.fine_classes)}), a macro class ({', '.join(taxonomy.macro_classes)}) "
                          f"nor {IGNORE}")


def load_label_mapping(path: str | Path) -> LabelMapping:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"label mapping: file {str(path)!r} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, dict) or not classes:
        raise ConfigError(f"label mapping {str(path)!r}: classes must be a non-empty mapping their label → ours")
    dataset = data.get("dataset")
    if dataset is not None and not Path(dataset).is_absolute():
        dataset = str((path.parent / dataset).resolve())
    return LabelMapping(str(data.get("name") or path.stem), {str(k): str(v) for k, v in classes.items()}, dataset)
