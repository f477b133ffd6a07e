"""A saved classifier is one folder: ``model.safetensors`` + ``model.json`` (architecture, classes, task,
preprocessing) + ``taxonomy.yaml``. ``flare predict`` needs nothing else (no hub, no pickle).

:func:`load_classifier` checks the folder before anything is predicted: a folder edited by hand or copied from
another run (classes that are not the taxonomy's, a head with another number of outputs, weights of another
architecture, broken JSON or YAML) gives one line that names the file and what does not match, not a ``KeyError``
deep inside scoring. Class names become folder names when sorting, so they must be safe names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from flare.classify.backbones import rebuild_backbone
from flare.classify.train import MEAN, STD
from flare.core.errors import FlareError
from flare.core.files import atomic_output
from flare.core.taxonomy import Taxonomy, load_taxonomy

__all__ = ["SavedClassifier", "save_classifier", "load_classifier", "WEIGHTS_NAME", "CONFIG_NAME"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "model.json"


@dataclass
class SavedClassifier:
    model: torch.nn.Module
    classes: list[str]  # output index → label (fine or macro, per ``task``)
    task: str  # "fine" or "macro"
    taxonomy: Taxonomy
    image_size_px: int
    config: dict[str, Any]


def save_classifier(folder: str | Path, model: torch.nn.Module, *, backbone: str, spec: dict[str, Any],
                    classes: list[str], task: str, taxonomy: Taxonomy, image_size_px: int,
                    extra: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(folder / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp))
    config = {"format": "flare-classifier/1", "backbone": backbone, "spec": spec, "classes": list(classes),
              "task": task, "preprocessing": {"size_px": image_size_px, "resize": "bicubic", "mean": MEAN,
                                              "std": STD, "channels": "RGB"}, **(extra or {})}
    with atomic_output(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
    taxonomy.save(folder / "taxonomy.yaml")
    return folder


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc`` as one short line: YAML and torch messages run over many lines."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _read_config(path: Path) -> dict[str, Any]:
    """``model.json`` with the fields :func:`load_classifier` uses, checked for presence and type."""
    where = f"predict.model_dir: {str(path)!r}"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise FlareError(f"{where} cannot be read as JSON ({_one_line(exc)})") from None
    if not isinstance(config, dict):
        raise FlareError(f"{where} must hold a JSON object")
    spec, preprocessing, classes = config.get("spec"), config.get("preprocessing"), config.get("classes")
    if not (isinstance(spec, dict) and isinstance(spec.get("architecture"), str)
            and isinstance(spec.get("kwargs"), dict)):
        raise FlareError(f"{where}: \"spec\" must be an object with \"architecture\" and \"kwargs\"")
    if config.get("task") not in ("fine", "macro"):
        raise FlareError(f"{where}: \"task\" must be \"fine\" or \"macro\", not {config.get('task')!r}")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise FlareError(f"{where}: \"classes\" must be a non-empty list of class names")
    size = preprocessing.get("size_px") if isinstance(preprocessing, dict) else None
    if not (isinstance(size, int) and size > 0):
        raise FlareError(f"{where}: \"preprocessing.size_px\" must be a positive integer")
    return config


def _check_classes(classes: list[str], task: str, taxonomy: Taxonomy, where: str) -> None:
    """The model's output classes must be exactly the taxonomy's classes for its task, each once."""
    expected = taxonomy.fine_classes if task == "fine" else taxonomy.macro_classes
    if sorted(classes) != expected:
        unknown = [c for c in classes if c not in expected]
        missing = [c for c in expected if c not in classes]
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        details = "; ".join(f"{name}: {', '.join(values)}" for name, values in
                            (("unknown", unknown), ("missing", missing), ("repeated", repeated)) if values)
        raise FlareError(f"{where}: classes [{', '.join(classes)}] do not match the {task} classes of taxonomy.yaml "
                         f"[{', '.join(expected)}] ({details})")


def _read_taxonomy(path: Path) -> Taxonomy:
    """``taxonomy.yaml`` (its fine and macro classes are safe names: they become folder names when sorting)."""
    try:
        return load_taxonomy(path)
    except (FlareError, yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise FlareError(f"predict.model_dir: {str(path)!r} is not a valid taxonomy ({_one_line(exc)})") from None


def load_classifier(folder: str | Path, device: str | torch.device = "cpu") -> SavedClassifier:
    from safetensors.torch import load_file

    folder = Path(folder)
    config_file, weights_file, taxonomy_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME, folder / "taxonomy.yaml"
    for file in (config_file, weights_file, taxonomy_file):
        if not file.is_file():
            raise FlareError(f"predict.model_dir: {str(file)!r} is missing (expected a folder saved by the benchmark)")
    config = _read_config(config_file)
    taxonomy = _read_taxonomy(taxonomy_file)
    classes, task = config["classes"], config["task"]
    _check_classes(classes, task, taxonomy, f"predict.model_dir: {str(config_file)!r}")
    architecture = config["spec"]["architecture"]
    try:
        model = rebuild_backbone(config["spec"])
        model.load_state_dict(load_file(str(weights_file)))
    except Exception as exc:  # timm, safetensors and torch each raise their own types (unknown architecture, bad
        # kwargs, corrupt file, mismatched shapes)
        raise FlareError(f"predict.model_dir: {str(weights_file)!r} does not load into the {architecture!r} of "
                         f"model.json ({type(exc).__name__}: {_one_line(exc)})") from None
    outputs = getattr(model, "num_classes", None)  # timm models expose their head size here
    if isinstance(outputs, int) and outputs != len(classes):
        raise FlareError(f"predict.model_dir: {str(config_file)!r}: the model has {outputs} outputs but "
                         f"{len(classes)} classes")
    model.to(device).eval()
    return SavedClassifier(model, classes, task, taxonomy, config["preprocessing"]["size_px"], config)
