"""Stage 1: LR → HR super-resolution. Backends (``list_upscalers()``) run through one interface
(:class:`UpscaleBackend`); :func:`upscale_dataset` applies one to a dataset and appends ``upscale`` rows."""

from flare.upscale import backends  # noqa: F401 - imports the modules that register the built-in backends
from flare.upscale.base import FLUX_TOLERANCE, UpscaleBackend, UpscalerInfo
from flare.upscale.registry import create_upscaler, list_upscalers, register_upscaler

__all__ = ["UpscaleBackend", "UpscalerInfo", "FLUX_TOLERANCE", "create_upscaler", "list_upscalers",
           "register_upscaler"]
