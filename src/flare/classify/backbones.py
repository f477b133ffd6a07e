"""timm backbones by stable FLARE names. Weights never come from a hub: random init, a registry package, or a
local file.

``create_model(pretrained=False)`` builds the architecture. The ``*-imagenet`` names start from the ImageNet
weights a pip package ships (:mod:`flare.core.pretrained`: EfficientNet-Lite0, and Lite1/Lite2 when installed),
with a new head; :func:`load_local_weights` loads a safetensors (or ``torch.load(weights_only=True)``) state
dict the user names, dropping the classifier head when its shape differs. The spec records where the weights
came from (``initialised_from``), and the report prints it. Every name in ``BACKBONES`` is registered with the
classify registry (``create_classifier``; ``resnet18`` is the default).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from flare.classify.registry import register_classifier
from flare.core.errors import ConfigError
from flare.core.pretrained import PRETRAINED, build_pretrained, is_installed

__all__ = ["BACKBONES", "build_backbone", "load_local_weights", "is_pretrained"]

# FLARE name → (timm architecture, extra timm kwargs, whether the image size must be passed to the model)
BACKBONES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "resnet-tiny": ("resnet18", {"layers": (1, 1, 1, 1), "channels": (16, 32, 64, 128), "stem_width": 16}, False),
    "resnet18": ("resnet18", {}, False),
    "resnet50": ("resnet50", {}, False),
    "efficientnet-b0": ("efficientnet_b0", {}, False),
    "densenet121": ("densenet121", {}, False),
    "googlenet": ("inception_v3", {"aux_logits": False}, False),
    "vit-tiny": ("vit_tiny_patch16_224", {"patch_size": 8}, True),
    "vit-base": ("vit_base_patch16_224", {}, True),
    **{name: (source.architecture, {}, False) for name, source in PRETRAINED.items()},
}


def is_pretrained(name: str) -> bool:
    """Whether backbone ``name`` starts from packaged ImageNet weights (and so may be used frozen)."""
    return name in PRETRAINED


def build_backbone(name: str, num_classes: int, image_size_px: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build backbone ``name`` (random weights, or the packaged ImageNet ones with a random head); returns the
    model and the spec that rebuilds it (architecture, kwargs, ``initialised_from``, input normalisation)."""
    import timm

    if name not in BACKBONES:
        raise ConfigError(f"benchmark.backbones: unknown backbone {name!r}; one of {', '.join(sorted(BACKBONES))}")
    architecture, extra, needs_size = BACKBONES[name]
    kwargs: dict[str, Any] = {**extra, "num_classes": num_classes}
    if needs_size:
        kwargs["img_size"] = image_size_px
    if is_pretrained(name):
        model, source = build_pretrained(name, num_classes)
        origin, mean, std = source.description, list(source.mean), list(source.std)
    else:
        model = timm.create_model(architecture, pretrained=False, **kwargs)
        origin, mean, std = "from scratch", [0.5] * 3, [0.5] * 3
    return model, {"architecture": architecture, "kwargs": _jsonable(kwargs), "initialised_from": origin,
                   "normalisation": {"mean": mean, "std": std}}


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}


def rebuild_backbone(spec: dict[str, Any]) -> torch.nn.Module:
    """Rebuild a model from the spec :func:`build_backbone` returned (saved in a model folder)."""
    import timm

    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec["kwargs"].items()}
    return timm.create_model(spec["architecture"], pretrained=False, **kwargs)


def load_local_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load a local state dict (safetensors or a weights-only torch file); returns the keys left at init.

    Tensors whose shape differs from the model's (the classifier head of an ImageNet checkpoint) are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"benchmark.pretrained: weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ConfigError(f"benchmark.pretrained: no tensor in {str(path)!r} matches the backbone")
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def _create(name: str, num_classes: int = 2, image_size_px: int = 64) -> torch.nn.Module:
    return build_backbone(name, num_classes, image_size_px)[0]


for _name, (_architecture, _extra, _) in BACKBONES.items():
    register_classifier(_name, description=f"backbone: timm {_architecture}" + (" (narrow, 1 block per stage)"
                        if _extra.get("layers") else "") + (f", {PRETRAINED[_name].description}"
                        + ("" if is_installed(_name) else f"; pip install {PRETRAINED[_name].package}")
                        if _name in PRETRAINED else ""), default=_name == "resnet18")(
        functools.partial(_create, _name))
