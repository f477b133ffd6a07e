"""The upscaler interface: what every super-resolution backend reports and does.

Modelled on spandrel's ``ImageModelDescriptor``: a backend states its ``scale``, its ``channels``, whether it
may run under bf16 autocast, and whether it needs tiling (a network's memory grows with the image; an
interpolation's does not). ``upscale`` maps a batch of float images in [0, 1] to a batch ``scale`` times larger.
Every backend exposes a frozen ``config`` (written to the manifest's ``params``) and a ``model_hash`` (sha256 of
the weights file, empty for interpolations).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["UpscaleBackend", "UpscalerInfo", "FLUX_TOLERANCE", "to_uint8"]

# A faithful upscaler keeps the total flux within this fraction (measured flux ratio 1.00 ± 0.02).
FLUX_TOLERANCE = 0.02


@dataclass(frozen=True)
class UpscalerInfo:
    """What a backend is, as spandrel's ImageModelDescriptor describes a model."""

    name: str
    scale: int
    channels: int = 3
    supports_bf16: bool = False
    needs_tiling: bool = False
    model_id: str = ""  # what the weights are (file name, release name)
    license: str = ""
    # Measured total-flux ratio on the GZ1 protocol (docs/super_resolution.md); None = not measured.
    measured_flux_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class UpscaleBackend(ABC):
    """A super-resolution backend. Subclasses set ``info`` and implement :meth:`upscale_batch`."""

    info: UpscalerInfo
    model_hash: str = ""

    @property
    def scale(self) -> int:
        return self.info.scale

    @property
    def config(self) -> dict[str, Any]:
        """Everything that decides the output (goes to the manifest's ``params``)."""
        return {"backend": self.info.name, "scale": self.info.scale, "model_id": self.info.model_id}

    @abstractmethod
    def upscale_batch(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, C)`` uint8 → ``(N, H·scale, W·scale, C)`` uint8 (values in [0, 255] ↔ [0, 1]).

        uint8 in and out (not float) so that a tiled backend converts one tile at a time and finishes each
        strip of a large output as it goes: memory beyond the input and output arrays stays bounded by the tile.
        """

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """One ``(H, W, C)`` uint8 image → ``(H·scale, W·scale, C)`` uint8."""
        return self.upscale_many([image])[0]

    def upscale_many(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Several images (same-size ones are batched together) → uint8 outputs in the same order."""
        outputs: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault(tuple(np.shape(image)), []).append(index)
        for indices in groups.values():
            batch = np.stack([_as_uint8_hwc(images[i]) for i in indices])
            for i, out in zip(indices, self.upscale_batch(batch)):
                outputs[i] = out
        return outputs  # type: ignore[return-value]


def _as_uint8_hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.dtype != np.uint8:
        raise TypeError(f"upscale: expected a uint8 image, got {image.dtype}")
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] → uint8, rounded and clipped."""
    return np.clip(np.round(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
