"""A network upscaler: any ``nn.Module`` (NCHW in [0, 1] → ×scale) run tiled, batched, on the chosen device.

Also the backends that load their network from a weight file through spandrel: ``swinir`` (a SwinIR file named
by ``upscale.weights``; spandrel checks the architecture) and ``file`` (any spandrel-supported SR file), and the
pieces the other network backends share (:class:`DescriptorModule`, :func:`check_scale`). Options:
``weights``, ``scale``, ``tile_px``, ``tile_overlap_px``, ``device``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flare.core.device import autocast_context, select_device
from flare.core.errors import ConfigError, FlareError
from flare.core.files import sha256_file
from flare.upscale.base import UpscaleBackend, UpscalerInfo
from flare.upscale.registry import register_upscaler
from flare.upscale.tiling import upscale_tiled

__all__ = ["NetworkUpscaler", "DescriptorModule", "check_scale"]


class NetworkUpscaler(UpscaleBackend):
    """Runs ``module`` over tiles of ``tile_px`` LR pixels overlapping by ``tile_overlap_px`` (see tiling.py)."""

    def __init__(self, module: nn.Module, info: UpscalerInfo, *, model_hash: str = "", tile_px: int = 256,
                 tile_overlap_px: int = 16, device: str = "auto", extra_config: dict[str, Any] | None = None):
        self.info = info
        self.model_hash = model_hash
        self.tile_px, self.tile_overlap_px = int(tile_px), int(tile_overlap_px)
        self.device = select_device(device, "upscale.device")
        self.module = module.eval().to(self.device)
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self._extra = dict(extra_config or {})

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "tile_px": self.tile_px, "tile_overlap_px": self.tile_overlap_px,
                "bf16": self.device.type == "cuda" and self.info.supports_bf16, **self._extra}

    def _run(self, tile: torch.Tensor) -> torch.Tensor:
        tile = tile.contiguous().to(self.device).float().div_(255.0)
        with autocast_context(self.device, self.info.supports_bf16):
            return self.module(tile)

    @torch.inference_mode()
    def upscale_batch(self, images: np.ndarray) -> np.ndarray:
        # A uint8 NCHW view (no copy); each tile is made contiguous, moved and scaled to [0, 1] on its own.
        view = torch.from_numpy(images).permute(0, 3, 1, 2)
        return upscale_tiled(self._run, view, self.info.scale, self.tile_px, self.tile_overlap_px)


class DescriptorModule(nn.Module):
    """A spandrel ImageModelDescriptor as an ``nn.Module`` (its call pads to the model's size requirements)."""

    def __init__(self, descriptor: Any):
        super().__init__()
        self.model = descriptor.model
        self._descriptor = descriptor

    def forward(self, images):
        return self._descriptor(images)


def check_scale(name: str, scale: int | None, model_scale: int) -> None:
    """A network has one scale: ``upscale.scale``, when set, must be it."""
    if scale is not None and int(scale) != model_scale:
        raise ConfigError(f"upscale.scale: {scale} is not the scale of backend {name} ({model_scale})")


def _from_weight_file(name: str, weights: str | None, scale: int | None, tile_px: int, tile_overlap_px: int,
                      device: str, require_architecture: str | None) -> NetworkUpscaler:
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    if not weights:
        raise ConfigError(f"upscale.weights: backend {name} needs a weight file (set upscale.weights)")
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"upscale.weights: {weights!r} does not exist")
    try:
        descriptor = ModelLoader(device="cpu").load_from_file(str(path))
    except UnsupportedModelError:
        raise FlareError(f"upscale.weights: spandrel does not recognise the architecture of {weights!r}") from None
    except Exception as exc:  # corrupt files raise many types (safetensors, pickle, zip)
        raise FlareError(f"upscale.weights: cannot load {weights!r} ({type(exc).__name__}: {exc})") from None
    if not isinstance(descriptor, ImageModelDescriptor):
        raise FlareError(f"upscale.weights: {weights!r} is not an image-to-image model")
    architecture = descriptor.architecture.id
    if require_architecture and architecture != require_architecture:
        raise ConfigError(f"upscale.weights: {weights!r} is a {architecture} model; backend {name} needs "
                          f"{require_architecture} (use backend `file` for other architectures)")
    check_scale(name, scale, descriptor.scale)
    info = UpscalerInfo(name=name, scale=descriptor.scale, channels=descriptor.input_channels,
                        supports_bf16=bool(descriptor.supports_bfloat16), needs_tiling=True, model_id=path.name,
                        extra={"architecture": architecture})
    return NetworkUpscaler(DescriptorModule(descriptor), info, model_hash=sha256_file(path), tile_px=tile_px,
                           tile_overlap_px=tile_overlap_px, device=device, extra_config={"architecture": architecture})


@register_upscaler("swinir", description="A SwinIR weight file (upscale.weights; architecture checked by spandrel)")
def swinir(weights: str | None = None, scale: int | None = None, tile_px: int = 256, tile_overlap_px: int = 16,
           device: str = "auto") -> NetworkUpscaler:
    return _from_weight_file("swinir", weights, scale, tile_px, tile_overlap_px, device, "SwinIR")


@register_upscaler("file", description="Any spandrel-supported SR weight file (upscale.weights)")
def weight_file(weights: str | None = None, scale: int | None = None, tile_px: int = 256, tile_overlap_px: int = 16,
                device: str = "auto") -> NetworkUpscaler:
    return _from_weight_file("file", weights, scale, tile_px, tile_overlap_px, device, None)
