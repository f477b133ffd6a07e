"""Benchmark presets: one training recipe for every method, sized for a machine (a 2-core CPU up to a GPU).

The recipe (recorded in every cell's JSON and shown in the report):

- **Budget in optimiser steps, the same for every method at a given data size.** An *epoch* is
  ``samples_per_epoch`` training samples, by default the number of *real* train images of the run, drawn
  without replacement from the method's pool (a pool smaller than that is cycled). So Raw_HR sees each real
  image ``epochs`` times, and Raw_Aug, whose pool is six times larger, gets the same number of steps rather
  than six times more compute. ``epochs`` is sized so that the smallest pool converges (val macro-F1 plateaus
  before the end; the report shows every cell's val curve).
- **Linear warm-up then cosine decay** over the whole budget (``warmup_fraction`` of the steps).
- **Class imbalance**: ``class_balance="weighted-loss"`` (default) weights the cross-entropy by
  ``n / (C · n_c)`` of the method's train pool; ``"sampler"`` draws each class equally often instead.
- **Model choice and early stopping on val macro-F1 only** (``patience`` epochs without a better one).
- ``train_mode="frozen"`` keeps a pretrained backbone fixed, caches its penultimate features once per image and
  view, and trains only the linear head (a linear probe): on a 2-core CPU it costs one forward pass per image
  instead of ``epochs`` forward + backward passes.
- ``tta``: average the probabilities of the 8 rot90 × flip views, mirror pairs swapped for mirrored views.
- **Synthetic rows** (stage ``generate``): ``synthetic_weight`` scales their loss, ``synthetic_label_smoothing``
  softens their labels (real rows keep hard labels) and ``synthetic_batch_share`` caps their share of a batch.
  Every preset takes these from :class:`flare.core.config.BenchmarkConfig`, their one home.

Each preset is registered with the classify registry (``get_preset``, ``list_presets``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from flare.classify.registry import register_preset
from flare.core.config import BenchmarkConfig

_CONFIG = BenchmarkConfig.model_fields  # the synthetic-row defaults live in the config model

__all__ = ["BenchmarkPreset"]


@dataclass(frozen=True)
class BenchmarkPreset:
    """Everything a benchmark cell needs besides its data; recorded in every cell's JSON."""

    name: str
    backbones: tuple[str, ...]
    image_size_px: int
    epochs: int  # passes of ``samples_per_epoch`` samples; the step budget is epochs × ceil(samples / batch)
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 4  # early stopping: epochs without a better val macro-F1
    samples_per_epoch: int | None = None  # None: the run's number of real train images (same for every method)
    warmup_fraction: float = 0.05
    class_balance: Literal["weighted-loss", "sampler", "none"] = "weighted-loss"
    train_mode: Literal["full", "frozen"] = "full"
    tta: bool = False
    synthetic_weight: float = _CONFIG["synthetic_weight"].default
    synthetic_label_smoothing: float = _CONFIG["synthetic_label_smoothing"].default
    synthetic_batch_share: float | None = _CONFIG["synthetic_batch_share"].default  # None: no cap
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
    name="cpu-tiny", backbones=("resnet-tiny",), image_size_px=48, epochs=30, batch_size=32,
    learning_rate=2e-3, patience=8,
    description="`flare run`: a 4-stage ResNet with 16-128 channels at 48 px, 30 passes over the real train set"))
_register(BenchmarkPreset(
    name="cpu-scratch", backbones=("resnet18",), image_size_px=64, epochs=12, batch_size=64,
    learning_rate=1e-3, patience=5,
    description="a 2-core CPU, from scratch: resnet18 at 64 px, 12 passes over the real train set "
                "(also efficientnet-b0, densenet121, vit-tiny)"))
_register(BenchmarkPreset(
    name="cpu-frozen", backbones=("efficientnet-lite0-imagenet",), image_size_px=128, epochs=60, batch_size=256,
    learning_rate=3e-3, weight_decay=1e-4, patience=15, train_mode="frozen", tta=True,
    description="a 2-core CPU, pretrained: frozen ImageNet EfficientNet-Lite0 at 128 px, cached features, "
                "a linear head; TTA over the 8 rot90 x flip views"))
_register(BenchmarkPreset(
    name="paper", backbones=("resnet50", "googlenet", "densenet121", "vit-base"), image_size_px=224,
    epochs=30, batch_size=64, learning_rate=3e-4, patience=6,
    description="GPU, the paper's layout: resnet50, inception_v3 (as GoogLeNet), densenet121, ViT-B/16 at 224 px"))
# The CPU preset: the backbone that won the GZ1 comparison on val (docs/RESULTS.md: resnet18 from scratch val
# macro-F1 46.6 against 44.1 for the frozen Lite0 at 128 px). cpu-frozen is what fits the data-efficiency runs.
_register(BenchmarkPreset(
    name="cpu-small", backbones=("resnet18",), image_size_px=64, epochs=12, batch_size=64,
    learning_rate=1e-3, patience=5,
    description="the 2-core CPU preset, the GZ1 winner on val (docs/RESULTS.md): resnet18 from scratch at "
                "64 px, 12 passes over the real train set"))
