"""Benchmark presets: resolution, epochs and budget sized for a machine (a 2-core CPU up to a GPU).

An *epoch* is ``samples_per_epoch`` training images drawn without replacement from the method's pool (a smaller
pool is cycled). Every method therefore gets the same compute whatever its training-set size, so an augmented
set of 20,000 images is not simply trained six times longer than the raw set it came from.

Each preset is registered with the classify registry (``get_preset``, ``list_presets``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from flare.classify.registry import register_preset

__all__ = ["BenchmarkPreset"]


@dataclass(frozen=True)
class BenchmarkPreset:
    """Everything a benchmark cell needs besides its data; recorded in every cell's JSON."""

    name: str
    backbones: tuple[str, ...]
    image_size_px: int
    epochs: int
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 4  # early stopping: epochs without a better val macro-F1
    samples_per_epoch: int | None = None  # None: the whole pool each epoch
    eval_batch_size: int = 256
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["backbones"] = list(self.backbones)
        return out

    def with_overrides(self, **values: Any) -> "BenchmarkPreset":
        present = {k: (tuple(v) if k == "backbones" else v) for k, v in values.items() if v is not None}
        return replace(self, **present)


def _register(preset: BenchmarkPreset) -> None:
    @register_preset(preset.name, description=preset.description)
    def factory() -> BenchmarkPreset:
        return preset  # frozen, so one instance serves every caller (with_overrides returns a copy)


_register(BenchmarkPreset(
    name="cpu-tiny", backbones=("resnet-tiny",), image_size_px=48, epochs=12, batch_size=32,
    learning_rate=2e-3, patience=4, samples_per_epoch=512,
    description="`flare run`: a 4-stage ResNet with 16-128 channels at 48 px, 12 epochs of 512 (~10 s a cell)"))
_register(BenchmarkPreset(
    name="cpu-small", backbones=("resnet18",), image_size_px=64, epochs=8, batch_size=64,
    learning_rate=1e-3, patience=3, samples_per_epoch=1792,
    description="a 2-core CPU: resnet18 at 64 px, 8 epochs of 1,792 images (also efficientnet-b0, "
                "densenet121, vit-tiny); GZ1, 5 methods x 3 seeds fit in 90 min (docs/benchmark.md)"))
_register(BenchmarkPreset(
    name="paper", backbones=("resnet50", "googlenet", "densenet121", "vit-base"), image_size_px=224,
    epochs=30, batch_size=64, learning_rate=3e-4, patience=6, samples_per_epoch=None,
    description="GPU, the paper's layout: resnet50, inception_v3 (as GoogLeNet), densenet121, ViT-B/16 at 224 px"))
