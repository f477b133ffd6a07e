"""The built-in upscalers: importing this module imports every module that registers one, and gathers the
total-flux ratios measured for them (the stage warns when a backend's is outside 1.00 ± 0.02).

``bicubic`` / ``lanczos`` (interpolation.py): interpolation baselines. ``realesrgan-x4plus`` (realesrgan.py):
pretrained Real-ESRGAN converted from the packaged ncnn model (photographic prior; loses faint flux on sky
images). ``swinir`` / ``file`` (network.py): a SwinIR weight file named by ``upscale.weights`` / any
spandrel-supported weight file. ``swinir-trained`` (swinir_model.py): the small residual SwinIR trained on the
dataset's own train split by ``flare upscale train`` (``weights`` = model folder). Each factory's signature
names the options that backend takes; ``create_upscaler`` rejects any other.
"""

from __future__ import annotations

from flare.upscale import interpolation, network, realesrgan, swinir_model  # noqa: F401 - each registers its backends

__all__ = ["MEASURED_FLUX_RATIO"]

# Output / HR truth on the GZ1 protocol test subset (docs/super_resolution.md); swinir-trained records its own.
MEASURED_FLUX_RATIO: dict[str, float] = {**interpolation.MEASURED_FLUX_RATIO, **realesrgan.MEASURED_FLUX_RATIO}
