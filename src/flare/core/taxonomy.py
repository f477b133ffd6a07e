"""Fine → macro label mapping, display names and flip-mirror pairs, loaded from YAML or a named preset.

A preset file looks like::

    name: gz1
    classes:                      # fine label: macro label
      elliptical: smooth
      spiral_clockwise: disk
    mirror_pairs:                 # labels that swap when the image is mirrored (a flip reverses chirality)
      - [spiral_clockwise, spiral_anticlockwise]
    display_names:                # optional; default replaces "_" by " "
      edge_on: edge-on disk galaxy

Overrides: a taxonomy file of your own, or ``Taxonomy.with_overrides({...})`` for a few fine → macro changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from flare.core.errors import ConfigError

__all__ = ["Taxonomy", "load_taxonomy", "list_taxonomy_presets", "LABEL_PATTERN"]

# Labels become folder names, so they are restricted to a safe character set.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}$")


@dataclass(frozen=True)
class Taxonomy:
    name: str
    fine_to_macro: dict[str, str]
    mirror_pairs: tuple[tuple[str, str], ...] = ()
    display_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label in self.fine_to_macro:
            if not LABEL_PATTERN.match(label):
                raise ConfigError(f"taxonomy.classes: label {label!r} is not a safe name (letters, digits, _ . + - space)")
        # macro classes become folder names too (flare predict --sort, macro tasks)
        for macro in set(self.fine_to_macro.values()):
            if not LABEL_PATTERN.match(macro):
                raise ConfigError(f"taxonomy.classes: macro class {macro!r} is not a safe name "
                                  "(letters, digits, _ . + - space)")
        for a, b in self.mirror_pairs:
            for label in (a, b):
                if label not in self.fine_to_macro:
                    raise ConfigError(f"taxonomy.mirror_pairs: {label!r} is not one of {', '.join(self.fine_classes)}")

    @property
    def fine_classes(self) -> list[str]:
        return sorted(self.fine_to_macro)

    @property
    def macro_classes(self) -> list[str]:
        return sorted(set(self.fine_to_macro.values()))

    def macro(self, fine_label: str) -> str:
        try:
            return self.fine_to_macro[fine_label]
        except KeyError:
            raise ConfigError(f"taxonomy: label {fine_label!r} is not one of {', '.join(self.fine_classes)}") from None

    def mirror(self, fine_label: str) -> str:
        """The label an image gets after a mirroring transform (itself unless it is in a mirror pair)."""
        for a, b in self.mirror_pairs:
            if fine_label == a:
                return b
            if fine_label == b:
                return a
        return fine_label

    def display_name(self, fine_label: str) -> str:
        """Human-readable class name used in prompts and reports."""
        return self.display_names.get(fine_label, fine_label.replace("_", " "))

    def with_overrides(self, fine_to_macro: dict[str, str]) -> "Taxonomy":
        merged = {**self.fine_to_macro, **fine_to_macro}
        return Taxonomy(self.name, merged, self.mirror_pairs, self.display_names)

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "classes": dict(self.fine_to_macro)}
        if self.mirror_pairs:
            out["mirror_pairs"] = [list(p) for p in self.mirror_pairs]
        if self.display_names:
            out["display_names"] = dict(self.display_names)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Taxonomy":
        if not isinstance(data, dict) or not isinstance(data.get("classes"), dict) or not data["classes"]:
            raise ConfigError("taxonomy.classes: must be a non-empty mapping of fine label → macro label")
        pairs = tuple(tuple(p) for p in data.get("mirror_pairs") or ())
        if any(len(p) != 2 for p in pairs):
            raise ConfigError("taxonomy.mirror_pairs: each entry must be a pair [a, b]")
        return cls(
            name=str(data.get("name", "custom")),
            fine_to_macro={str(k): str(v) for k, v in data["classes"].items()},
            mirror_pairs=pairs,  # type: ignore[arg-type]
            display_names={str(k): str(v) for k, v in (data.get("display_names") or {}).items()},
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def list_taxonomy_presets() -> list[str]:
    files = resources.files("flare") / "taxonomies"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_taxonomy(name_or_path: str | Path) -> Taxonomy:
    """Load a preset by name (``gz1``, ``spacenet``, ``sim``) or a YAML file by path.

    A ``.yaml``/``.yml`` path or an existing file is a file. Any other preset name is the preset, even where a
    folder of that name exists: ``flare data ingest SRC gz1/ingested --taxonomy gz1`` makes ``gz1/``.
    """
    path = Path(name_or_path)
    is_file = path.is_file()
    if is_file or path.suffix in (".yaml", ".yml"):
        if not is_file:
            raise ConfigError(f"taxonomy: file {str(path)!r} does not exist")
        return Taxonomy.from_dict(yaml.safe_load(path.read_text()))
    presets = list_taxonomy_presets()
    if str(name_or_path) in presets:
        text = (resources.files("flare") / "taxonomies" / f"{name_or_path}.yaml").read_text()
        return Taxonomy.from_dict(yaml.safe_load(text))
    if path.exists():
        raise ConfigError(f"taxonomy: {str(path)!r} is a folder, not a YAML file nor one of the presets "
                          f"{', '.join(presets)}")
    raise ConfigError(f"taxonomy: {str(name_or_path)!r} is not a file nor one of the presets {', '.join(presets)}")
