"""The trainable SR model: a small SwinIR (spandrel's architecture class) predicting a residual over bicubic.

``output = bicubic(lr) + (SwinIR(lr) - SwinIR.mean)``. SwinIR's last convolution starts at zero, so an untrained
model *is* bicubic interpolation, which keeps total flux; training only adds what the data supports. A model
folder holds ``model.safetensors`` (weights), ``config.json`` (architecture, degradation, training settings)
and ``README.md`` (a model card); ``checkpoint.pt`` holds the optimiser state while training. Registers the
``swinir-trained`` backend (``weights`` = the model folder; ``scale``, ``tile_px``, ``tile_overlap_px``, ``device``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flare.core.errors import ConfigError, FlareError
from flare.core.files import sha256_file
from flare.upscale.base import UpscalerInfo
from flare.upscale.network import NetworkUpscaler, check_scale
from flare.upscale.registry import register_upscaler

__all__ = ["SwinIRConfig", "ResidualSwinIR", "build_model", "save_model", "load_model", "WEIGHTS_NAME",
           "CONFIG_NAME", "CARD_NAME", "has_model"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"


@dataclass(frozen=True)
class SwinIRConfig:
    """Architecture of the residual SwinIR (a lightweight SwinIR: pixel-shuffle-direct upsampler)."""

    scale: int = 4
    embed_dim: int = 32
    depths: tuple[int, ...] = (2, 2)
    num_heads: tuple[int, ...] = (4, 4)
    window_size: int = 8
    mlp_ratio: float = 2.0
    img_size: int = 24

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SwinIRConfig":
        data = dict(data)
        for key in ("depths", "num_heads"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class ResidualSwinIR(nn.Module):
    """Bicubic upsample plus a SwinIR-predicted residual (NCHW float in [0, 1] → ×scale)."""

    def __init__(self, config: SwinIRConfig):
        super().__init__()
        from spandrel.architectures.SwinIR import SwinIR

        self.config = config
        self.swinir = SwinIR(img_size=config.img_size, in_chans=3, embed_dim=config.embed_dim,
                             depths=list(config.depths), num_heads=list(config.num_heads),
                             window_size=config.window_size, mlp_ratio=config.mlp_ratio, upscale=config.scale,
                             img_range=1.0, upsampler="pixelshuffledirect", resi_connection="1conv",
                             drop_path_rate=0.0)
        last = self.swinir.upsample[0]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(lr, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        mean = self.swinir.mean.to(lr.device, lr.dtype)
        return base + (self.swinir(lr) - mean)


def build_model(config: SwinIRConfig, seed: int = 0) -> ResidualSwinIR:
    torch.manual_seed(seed)
    return ResidualSwinIR(config)


def has_model(model_dir: str | Path) -> bool:
    model_dir = Path(model_dir)
    return (model_dir / WEIGHTS_NAME).is_file() and (model_dir / CONFIG_NAME).is_file()


def save_model(model: ResidualSwinIR, model_dir: str | Path, metadata: dict[str, Any], card: str) -> Path:
    """Write weights (safetensors), config.json and the model card; returns the weights path."""
    from safetensors.torch import save_file

    from flare.core.files import atomic_output

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    weights = model_dir / WEIGHTS_NAME
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})  # one key: safetensors does not order metadata
    payload = {"architecture": "ResidualSwinIR", "swinir": model.config.to_dict(), **metadata}
    with atomic_output(model_dir / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    with atomic_output(model_dir / CARD_NAME) as tmp:
        tmp.write_text(card)
    return weights


def load_model(model_dir: str | Path) -> tuple[ResidualSwinIR, dict[str, Any]]:
    """Rebuild the model from ``config.json`` and load ``model.safetensors``."""
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    if not has_model(model_dir):
        raise FlareError(f"upscale.weights: {str(model_dir)!r} holds no trained model "
                         f"({WEIGHTS_NAME} + {CONFIG_NAME}); run `flare upscale train` first")
    metadata = json.loads((model_dir / CONFIG_NAME).read_text())
    model = ResidualSwinIR(SwinIRConfig.from_dict(metadata.get("swinir", {})))
    model.load_state_dict(load_file(str(model_dir / WEIGHTS_NAME)))
    return model.eval(), metadata


@register_upscaler("swinir-trained", description="Small SwinIR trained on this dataset (flux-conserving residual)")
def swinir_trained(weights: str | None = None, scale: int | None = None, tile_px: int = 256,
                   tile_overlap_px: int = 16, device: str = "auto") -> NetworkUpscaler:
    if not weights:
        raise ConfigError("upscale.weights: backend swinir-trained needs a model folder "
                          "(made by `flare upscale train DATASET MODEL_DIR`)")
    model, metadata = load_model(weights)
    check_scale("swinir-trained", scale, model.config.scale)
    evaluation = metadata.get("evaluation", {})
    info = UpscalerInfo(name="swinir-trained", scale=model.config.scale, supports_bf16=True, needs_tiling=True,
                        model_id=f"{Path(weights).resolve().name}/{WEIGHTS_NAME}", license="same as the training data",
                        measured_flux_ratio=evaluation.get("flux_ratio"))
    return NetworkUpscaler(model, info, model_hash=sha256_file(Path(weights) / WEIGHTS_NAME), tile_px=tile_px,
                           tile_overlap_px=tile_overlap_px, device=device,
                           extra_config={"architecture": model.config.to_dict()})
