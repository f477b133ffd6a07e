"""The generation backend interface: components in, a numbered-step ``__call__`` out (the diffusers pattern).

Every backend exposes a frozen ``.config`` (written to the manifest's ``params`` with the weights' hash) and two
operations the stage uses: text-to-image from prompts, and image-to-image variations of given images. Both take
one seed per image (a CPU ``torch.Generator`` each, so a result never depends on batching) and return a
:class:`GenerationOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

__all__ = ["FrozenConfig", "GenerationOutput", "GenerationBackend", "to_uint8_images", "per_image_generators"]


class FrozenConfig(Mapping[str, Any]):
    """A read-only mapping with attribute access (``config.resolution_px``), like diffusers' ``FrozenDict``."""

    def __init__(self, values: Mapping[str, Any] | None = None, **more: Any):
        object.__setattr__(self, "_values", {**dict(values or {}), **more})

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"FrozenConfig is read-only: cannot set {key!r}")

    def __repr__(self) -> str:
        return f"FrozenConfig({self._values!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


@dataclass(frozen=True)
class GenerationOutput:
    """What one call made: ``images[i]`` (H, W, 3 uint8) came from ``seeds[i]`` with ``params[i]``."""

    images: list[np.ndarray]
    seeds: list[int]
    params: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


class GenerationBackend:
    """Base class: subclasses set ``name``, build ``self.config`` and implement the two operations."""

    name: str = "base"
    config: FrozenConfig = FrozenConfig()
    model_id: str = ""
    model_hash: str = ""
    resolution_px: int = 32
    # operation names written to the manifest (the combine stage selects by them)
    t2i_operation: str = "t2i"
    variation_operation: str = "i2i-variation"

    def text_to_image(self, prompts: list[str], seeds: list[int], *, guidance_scale: float,
                      num_inference_steps: int) -> GenerationOutput:
        raise NotImplementedError

    def variation(self, images: list[np.ndarray], prompts: list[str], seeds: list[int], *, strength: float,
                  guidance_scale: float, num_inference_steps: int) -> GenerationOutput:
        raise NotImplementedError


def per_image_generators(seeds: list[int]):
    """One CPU generator per image (diffusers' "reusing seeds" advice): batching never changes an image."""
    import torch

    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]


def to_uint8_images(batch) -> list[np.ndarray]:
    """``(B, 3, H, W)`` tensor in [-1, 1] → list of (H, W, 3) uint8 arrays."""
    array = ((batch.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(dtype=__import__("torch").uint8)
    return [a for a in array.permute(0, 2, 3, 1).numpy()]
