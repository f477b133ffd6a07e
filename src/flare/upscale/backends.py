"""The built-in upscalers and their default settings (weight source, scale, tiling, licence).

``bicubic`` / ``lanczos``: interpolation baselines. ``realesrgan-x4plus``: pretrained Real-ESRGAN converted
from the packaged ncnn model (photographic prior; loses faint flux on sky images). ``swinir``: a SwinIR weight
file named by ``upscale.weights``; ``file``: any spandrel-supported weight file. ``swinir-trained``: the small
residual SwinIR trained on the dataset's own train split by ``flare upscale train`` (``weights`` = model folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from flare.core.errors import ConfigError, FlareError
from flare.core.files import sha256_file
from flare.upscale.base import UpscalerInfo
from flare.upscale.interpolation import InterpolationUpscaler
from flare.upscale.network import NetworkUpscaler
from flare.upscale.registry import register_upscaler

__all__ = ["DescriptorModule", "MEASURED_FLUX_RATIO"]

# Total-flux ratio (output / HR truth) measured on the GZ1 protocol test subset (docs/super_resolution.md).
MEASURED_FLUX_RATIO: dict[str, float] = {"bicubic": 1.004, "lanczos": 1.005, "realesrgan-x4plus": 0.772}


class DescriptorModule(nn.Module):
    """A spandrel ImageModelDescriptor as an ``nn.Module`` (its call pads to the model's size requirements)."""

    def __init__(self, descriptor: Any):
        super().__init__()
        self.model = descriptor.model
        self._descriptor = descriptor

    def forward(self, images):
        return self._descriptor(images)


def _check_scale(name: str, scale: int | None, model_scale: int) -> None:
    if scale is not None and int(scale) != model_scale:
        raise ConfigError(f"upscale.scale: {scale} is not the scale of backend {name} ({model_scale})")


@register_upscaler("bicubic", description="Bicubic interpolation (faithful baseline; the auto fallback)",
                   default=True)
def bicubic(scale: int = 4, **_: Any) -> InterpolationUpscaler:
    return InterpolationUpscaler("bicubic", scale, MEASURED_FLUX_RATIO["bicubic"])


@register_upscaler("lanczos", description="Lanczos interpolation (faithful baseline)")
def lanczos(scale: int = 4, **_: Any) -> InterpolationUpscaler:
    return InterpolationUpscaler("lanczos", scale, MEASURED_FLUX_RATIO["lanczos"])


@register_upscaler("realesrgan-x4plus", description="Real-ESRGAN x4plus (pretrained, photographic; loses faint flux)",
                   license="BSD-3-Clause (Real-ESRGAN weights), MIT (ncnn package)")
def realesrgan_x4plus(scale: int | None = None, tile_px: int = 128, tile_overlap_px: int = 8, device: str = "auto",
                      **_: Any) -> NetworkUpscaler:
    from flare.upscale.realesrgan import CONVERTED_NAME, load_descriptor

    _check_scale("realesrgan-x4plus", scale, 4)
    descriptor, digest = load_descriptor()
    info = UpscalerInfo(name="realesrgan-x4plus", scale=descriptor.scale, channels=descriptor.input_channels,
                        supports_bf16=bool(descriptor.supports_bfloat16), needs_tiling=True,
                        model_id=CONVERTED_NAME, license="BSD-3-Clause",
                        measured_flux_ratio=MEASURED_FLUX_RATIO["realesrgan-x4plus"])
    return NetworkUpscaler(DescriptorModule(descriptor), info, model_hash=digest, tile_px=tile_px,
                           tile_overlap_px=tile_overlap_px, device=device)


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
    _check_scale(name, scale, descriptor.scale)
    info = UpscalerInfo(name=name, scale=descriptor.scale, channels=descriptor.input_channels,
                        supports_bf16=bool(descriptor.supports_bfloat16), needs_tiling=True, model_id=path.name,
                        extra={"architecture": architecture})
    return NetworkUpscaler(DescriptorModule(descriptor), info, model_hash=sha256_file(path), tile_px=tile_px,
                           tile_overlap_px=tile_overlap_px, device=device, extra_config={"architecture": architecture})


@register_upscaler("swinir", description="A SwinIR weight file (upscale.weights; architecture checked by spandrel)")
def swinir(weights: str | None = None, scale: int | None = None, tile_px: int = 256, tile_overlap_px: int = 16,
           device: str = "auto", **_: Any) -> NetworkUpscaler:
    return _from_weight_file("swinir", weights, scale, tile_px, tile_overlap_px, device, "SwinIR")


@register_upscaler("file", description="Any spandrel-supported SR weight file (upscale.weights)")
def weight_file(weights: str | None = None, scale: int | None = None, tile_px: int = 256, tile_overlap_px: int = 16,
                device: str = "auto", **_: Any) -> NetworkUpscaler:
    return _from_weight_file("file", weights, scale, tile_px, tile_overlap_px, device, None)


@register_upscaler("swinir-trained", description="Small SwinIR trained on this dataset (flux-conserving residual)")
def swinir_trained(weights: str | None = None, scale: int | None = None, tile_px: int = 256,
                   tile_overlap_px: int = 16, device: str = "auto", **_: Any) -> NetworkUpscaler:
    from flare.upscale.swinir_model import WEIGHTS_NAME, load_model

    if not weights:
        raise ConfigError("upscale.weights: backend swinir-trained needs a model folder "
                          "(made by `flare upscale train DATASET MODEL_DIR`)")
    model, metadata = load_model(weights)
    _check_scale("swinir-trained", scale, model.config.scale)
    evaluation = metadata.get("evaluation", {})
    info = UpscalerInfo(name="swinir-trained", scale=model.config.scale, supports_bf16=True, needs_tiling=True,
                        model_id=f"{Path(weights).resolve().name}/{WEIGHTS_NAME}", license="same as the training data",
                        measured_flux_ratio=evaluation.get("flux_ratio"))
    return NetworkUpscaler(model, info, model_hash=sha256_file(Path(weights) / WEIGHTS_NAME), tile_px=tile_px,
                           tile_overlap_px=tile_overlap_px, device=device,
                           extra_config={"architecture": model.config.to_dict()})
