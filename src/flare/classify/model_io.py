"""A saved classifier is one folder: ``model.safetensors`` + ``model.json`` (architecture, classes, task,
preprocessing) + ``taxonomy.yaml``. ``flare predict`` needs nothing else (no hub, no pickle)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

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


def load_classifier(folder: str | Path, device: str | torch.device = "cpu") -> SavedClassifier:
    from safetensors.torch import load_file

    folder = Path(folder)
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for file in (config_file, weights_file, folder / "taxonomy.yaml"):
        if not file.is_file():
            raise FlareError(f"predict.model_dir: {str(file)!r} is missing (expected a folder saved by the benchmark)")
    config = json.loads(config_file.read_text())
    model = rebuild_backbone(config["spec"])
    model.load_state_dict(load_file(str(weights_file)))
    model.to(device).eval()
    return SavedClassifier(model, config["classes"], config["task"], load_taxonomy(folder / "taxonomy.yaml"),
                           int(config["preprocessing"]["size_px"]), config)
