"""Stage 1: LR → HR super-resolution. Backends (``list_upscalers()``) run through one interface
(:class:`UpscaleBackend`); :func:`upscale_dataset` applies one to a dataset and appends ``upscale`` rows.

Built-in backends, each registered by its own module: ``bicubic`` / ``lanczos`` (interpolation.py, the
faithful baselines); ``swinir`` / ``file`` (network.py: a SwinIR or any spandrel-supported weight file named by
``upscale.weights``); ``realesrgan-x4plus`` (realesrgan.py: pretrained Real-ESRGAN converted from the packaged
ncnn model; a photographic prior that loses faint flux on sky images); ``swinir-trained`` (swinir_model.py: the
small residual SwinIR trained on the dataset's own train split by ``flare upscale train``).
"""

from flare.upscale import interpolation, network, realesrgan, swinir_model  # noqa: F401
from flare.upscale.base import FLUX_TOLERANCE, UpscaleBackend, UpscalerInfo
from flare.upscale.registry import create_upscaler, list_upscalers, register_upscaler

__all__ = ["UpscaleBackend", "UpscalerInfo", "FLUX_TOLERANCE", "create_upscaler", "list_upscalers",
           "register_upscaler"]
