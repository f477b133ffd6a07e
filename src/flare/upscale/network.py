"""A network upscaler: any ``nn.Module`` (NCHW in [0, 1] → ×scale) run tiled, batched, on the chosen device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from flare.upscale.base import UpscaleBackend, UpscalerInfo
from flare.core.device import autocast_context, select_device
from flare.upscale.tiling import upscale_tiled

__all__ = ["NetworkUpscaler"]


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
