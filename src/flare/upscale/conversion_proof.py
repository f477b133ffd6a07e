"""Evidence that the ncnn → PyTorch conversion of Real-ESRGAN x4plus is right.

1. Two independent load paths agree exactly: spandrel's ``ModelLoader`` on the converted safetensors file
   (architecture detected from the BasicSR keys, converted by spandrel) vs spandrel's ``RRDBNet`` class built
   directly with the key mapping written here and ``load_state_dict(strict=True)``.
2. On a natural image scikit-image ships (``chelsea``, centre 256² crop as HR, ×4 bicubic-downscaled as LR) the
   converted model gives a sharp output close to the truth, which a randomly initialised RRDBNet of the same
   architecture cannot: PSNR vs HR, and sharpness = mean Sobel gradient magnitude of the output / that of HR.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["to_old_arch_keys", "conversion_proof", "gradient_sharpness"]


def to_old_arch_keys(state: dict[str, torch.Tensor], num_blocks: int = 23) -> dict[str, torch.Tensor]:
    """BasicSR (new-arch) RRDBNet keys → the keys of spandrel's old-arch ``RRDBNet`` class."""
    fixed = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_blocks}", "conv_up1": "model.3",
             "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
    out = {}
    for key, value in state.items():
        layer, kind = key.rsplit(".", 1)
        if layer in fixed:
            out[f"{fixed[layer]}.{kind}"] = value
        else:  # body.{b}.rdb{r}.conv{c}
            _, block, rdb, conv = layer.split(".")
            out[f"model.1.sub.{block}.RDB{rdb[3:]}.{conv}.0.{kind}"] = value
    return out


def gradient_sharpness(image: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the grey image (display units per pixel)."""
    from scipy.ndimage import sobel

    grey = np.asarray(image, dtype=np.float64).mean(axis=2)
    return float(np.hypot(sobel(grey, axis=0), sobel(grey, axis=1)).mean())


def _run(model: torch.nn.Module, lr: np.ndarray) -> np.ndarray:
    tensor = torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    with torch.inference_mode():
        out = model(tensor)[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.round(out * 255.0).astype(np.uint8)


def conversion_proof(crop_px: int = 256, image: str = "chelsea") -> dict[str, Any]:
    """Numbers for docs/super_resolution.md (about 10 s on one CPU core)."""
    from PIL import Image
    from safetensors.torch import load_file
    from skimage import data
    from skimage.metrics import peak_signal_noise_ratio
    from spandrel import ModelLoader
    from spandrel.architectures.ESRGAN import ESRGAN

    from flare.upscale.realesrgan import realesrgan_weights

    source = getattr(data, image)()
    top, left = (source.shape[0] - crop_px) // 2, (source.shape[1] - crop_px) // 2
    hr = np.ascontiguousarray(source[top:top + crop_px, left:left + crop_px, :3])
    lr = np.asarray(Image.fromarray(hr).resize((crop_px // 4, crop_px // 4), Image.Resampling.BICUBIC))
    bicubic = np.asarray(Image.fromarray(lr).resize((crop_px, crop_px), Image.Resampling.BICUBIC))

    path = realesrgan_weights()
    loaded = ModelLoader(device="cpu").load_from_file(str(path)).model.eval()
    direct = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)
    direct.load_state_dict(to_old_arch_keys(load_file(str(path))), strict=True)
    direct.eval()
    torch.manual_seed(0)
    random_init = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4).eval()

    out_loader, out_direct, out_random = _run(loaded, lr), _run(direct, lr), _run(random_init, lr)
    psnr = lambda out: float(peak_signal_noise_ratio(hr, out, data_range=255))  # noqa: E731
    sharp_hr = gradient_sharpness(hr)
    return {
        "image": f"skimage.data.{image} centre {crop_px}², LR = ×4 bicubic downscale",
        "max_abs_difference_between_load_paths": int(np.abs(out_loader.astype(int) - out_direct.astype(int)).max()),
        "psnr_converted_db": psnr(out_loader), "psnr_random_init_db": psnr(out_random),
        "psnr_bicubic_db": psnr(bicubic),
        "sharpness_converted": gradient_sharpness(out_loader) / sharp_hr,
        "sharpness_random_init": gradient_sharpness(out_random) / sharp_hr,
        "sharpness_bicubic": gradient_sharpness(bicubic) / sharp_hr,
    }
